"""Trials in populations: up to K trials of one shape asked together and trained as one batched
model (`nntune.training.fit_population`), each recorded as its own Optuna trial.

The first trial of a batch is asked as usual. When its network can train in a population (a
plain MLP on a table, see `training.population_key`), the other K - 1 are created running with
its shape fixed (depth, activation, norm, optimizer, schedule, batch size), so the sampler
chooses everything else (learning rate, weight decay, momentum, widths, dropout) for each and no
other worker can take them; a trial of another shape trains alone. Every member reports its own curve, is pruned on
its own and is told to the study on its own: the dashboard, reports, resume and workers see
ordinary trials.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.storages._heartbeat import get_heartbeat_thread  # what Study.optimize runs per trial
from optuna.trial import FrozenTrial, TrialState, create_trial

from ..errors import TrialFailed
from ..training import Member, fit_population, population_key
from ._auto import MEMBER_ATTR
from ._objective import Objective
from ._space import suggest

# Values a population's members share, where the space searches them (training.population_key
# names what must match; these are the searched ones among them, and the family's own choices).
SHAPE = ("family", "n_layers", "activation", "norm", "residual", "embedding", "k", "optimizer", "nesterov",
         "schedule", "batch_size", "max_epochs", "warmup_epochs", "loss", "class_weight", "mixup_alpha",
         "curriculum", "augment")
# A member this large already keeps a thread busy alone (benchmarks/population.py: the
# sequential trainer reaches about three quarters of the matrix-multiply peak on 3 x 256 at
# batch 256), so `auto` trains it alone.
AUTO_MAX_WEIGHTS = 40_000
Outcome = tuple[str, Any]  # ("complete", value) | ("pruned", exc) | ("fail", TrialFailed)


def can_share(objective: Objective, params: dict[str, Any], input_dim: int, auto: bool) -> bool:
    """Whether this trial's network may train in a population."""
    family = params.get("family", objective.model) if objective.model == "auto" else objective.model
    if family != "mlp" or objective.kind != "table" or objective.pretrained is not None or objective.multi:
        return False
    if objective.objectives is not None and objective.objectives.constraints:
        return False
    if population_key(params) is None:
        return False
    return not auto or _weights(params, input_dim) <= AUTO_MAX_WEIGHTS


def _weights(params: dict[str, Any], input_dim: int) -> int:
    from ..models.mlp import layer_widths

    widths = [input_dim, *layer_widths(params), 1]
    return sum(a * b for a, b in zip(widths, widths[1:], strict=False))


def shape_of(trial: optuna.Trial, params: dict[str, Any]) -> dict[str, Any]:
    """The trial's values that its population's other members take as fixed."""
    searched = set(trial.params)
    return {name: params[name] for name in SHAPE if name in searched}


def train_population(objective: Objective, trials: Sequence[optuna.Trial]) -> list[Outcome]:
    """Train `trials` (sharing a population key) as one population per fold; one outcome each."""
    runs = [objective.start(trial) for trial in trials]
    outcomes: list[Outcome | None] = [None] * len(runs)
    alive = list(range(len(runs)))
    for k, fold in enumerate(objective.folds):
        if k and any(runs[i].out_of_time() for i in alive):
            break
        members, heads = [], []
        try:
            for i in alive:
                module, head = objective.build(runs[i], k, fold)
                members.append(Member(module, runs[i].params, objective.seed + runs[i].trial.number))
                heads.append(head)
        except Exception as exc:  # the networks could not be built: these trials fail
            for i in alive:
                outcomes[i] = ("fail", runs[i].failed(exc))
            return outcomes  # type: ignore[return-value]
        reporters = [runs[i].reporter(k) for i in alive]
        deadlines = [runs[i].deadline for i in alive if runs[i].deadline is not None]
        try:
            results = fit_population(
                members, heads[0], fold.X_train, fold.y_train, X_val=fold.X_eval, y_val=fold.y_eval,
                metric=objective.metric, on_epoch_end=lambda m, epoch, logs, r=reporters: r[m](epoch, logs),
                deadline=min(deadlines) if deadlines else None, device=objective.device)
        except Exception as exc:  # (out of memory, say): these trials fail; the study goes on
            for i in alive:
                outcomes[i] = ("fail", runs[i].failed(exc))
            return outcomes  # type: ignore[return-value]
        still = []
        for member, head, i, result in zip(members, heads, alive, results, strict=True):
            run = runs[i]
            try:
                if result.error is not None:
                    raise result.error
                run.add_fold(k, fold, member.module, head, result)
            except optuna.TrialPruned as exc:
                run.record()
                outcomes[i] = ("pruned", exc)
                continue
            except Exception as exc:
                outcomes[i] = ("fail", run.failed(exc))
                continue
            still.append(i)
        alive = still
        if not alive:
            break
    for i in alive:
        try:
            outcomes[i] = ("complete", objective.finish(runs[i]))
        except optuna.TrialPruned as exc:
            outcomes[i] = ("pruned", exc)
        except Exception as exc:
            outcomes[i] = ("fail", runs[i].failed(exc))
    return outcomes  # type: ignore[return-value]


class Batches:
    """Asks, trains and tells one batch of trials at a time (the trial loop's population mode)."""

    def __init__(self, objective: Objective, size: int, auto: bool,
                 guard: Callable[[optuna.Trial], None]) -> None:
        self.objective, self.size, self.auto, self.guard = objective, size, auto, guard
        self.input_dim = int(objective.folds[0].X_train.shape[1]) if objective.folds[0].X_train.ndim == 2 else 0

    def step(self, study: optuna.Study, free: int | None) -> list[FrozenTrial]:
        """One batch: up to min(size, free) trials; returns them as told."""
        # Trials already queued (starting recipes, warm starts, retried ones) run first, alone.
        queued = bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        first = _ask(study)
        try:
            self.guard(first)
            params = suggest(first, self.objective.space, self.objective.fixed)
        except TrialFailed:
            return [study.tell(first, state=TrialState.FAIL)]
        room = self.size if free is None else min(self.size, free)
        trials, told = [first], []
        if room > 1 and not queued and can_share(self.objective, params, self.input_dim, self.auto):
            shape = shape_of(first, params)
            key = population_key(params)
            for _ in range(room - 1):
                trial = _ask_member(study, shape, first.number)
                try:
                    self.guard(trial)
                except TrialFailed:  # another worker took the budget's last trials meanwhile
                    told.append(study.tell(trial, state=TrialState.FAIL))
                    break
                trials.append(trial)
            # A value the shape leaves open may still change the key (a conditional parameter
            # of another branch): such a trial trains alone after the batch.
            keys = [population_key(suggest(t, self.objective.space, self.objective.fixed)) for t in trials]
            together = [t for t, k in zip(trials, keys, strict=True) if k == key]
            apart = [t for t, k in zip(trials, keys, strict=True) if k != key]
        else:
            together, apart = [], trials
        with contextlib.ExitStack() as stack:
            for trial in trials:
                stack.enter_context(get_heartbeat_thread(trial._trial_id, study._storage))
            if len(together) > 1:
                for trial in together:
                    trial.set_user_attr("population", {"first": together[0].number, "size": len(together)})
                outcomes = train_population(self.objective, together)
                told += [_tell(study, t, o) for t, o in zip(together, outcomes, strict=True)]
            else:
                apart = together + apart
            for trial in apart:
                told.append(_tell(study, trial, _alone(self.objective, trial)))
        return told


def _ask(study: optuna.Study) -> optuna.Trial:
    with warnings.catch_warnings():
        # Optuna notes that heartbeats are meant for Study.optimize; `step` runs them itself,
        # one thread per trial, as Study.optimize does.
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return study.ask()


def _ask_member(study: optuna.Study, shape: dict[str, Any], first: int) -> optuna.Trial:
    """A member of trial `first`'s population: a trial of `shape`, created running, marked as a
    member for the sampler (MEMBER_ATTR). (`enqueue_trial` and `ask` would leave it waiting
    in between, where another worker's `ask` may take it, and on SQLite two workers may both
    take it; Optuna has no public call for this, so its storage is used as `ask` uses it.)"""
    template = create_trial(state=TrialState.RUNNING, system_attrs={"fixed_params": shape, MEMBER_ATTR: first})
    trial_id = study._storage.create_new_trial(study._study_id, template_trial=template)
    return optuna.Trial(study, trial_id)


def _alone(objective: Objective, trial: optuna.Trial) -> Outcome:
    try:
        return ("complete", objective(trial))
    except optuna.TrialPruned as exc:
        return ("pruned", exc)
    except TrialFailed as exc:
        return ("fail", exc)


def _tell(study: optuna.Study, trial: optuna.Trial, outcome: Outcome) -> FrozenTrial:
    state, value = outcome
    if state == "complete":
        return study.tell(trial, value)
    return study.tell(trial, state=TrialState.PRUNED if state == "pruned" else TrialState.FAIL)
