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
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.storages._heartbeat import get_heartbeat_thread  # what Study.optimize runs per trial
from optuna.trial import FrozenTrial, TrialState, create_trial

from ..errors import TrialFailed
from ..training import Member, fit_population, population_key
from ..training._recipe import DEFAULTS as RECIPE_DEFAULTS
from ._auto import MEMBER_ATTR
from ._objective import Objective
from ._space import suggest

# Values a population's members share, where the space searches them (training.population_key
# names what must match; these are the searched ones among them, and the family's own choices).
SHAPE = ("family", "n_layers", "activation", "norm", "residual", "embedding", "k", "optimizer", "nesterov",
         "schedule", "batch_size", "max_epochs", "warmup_epochs", "loss", "class_weight", "mixup_alpha",
         "curriculum", "augment")
# `auto` trains a population only where one member's step is small work: batch size x
# (weights + what the embedding costs per row), in multiply-adds. Where a step is more, the
# sequential trainer already keeps the thread busy and a population trains no faster.
# Measured (16 members against the sequential trainer, one thread, 2-layer MLPs of 16-256 units
# at batch 32-512, with and without plr_lite and batch norm; docs/population.md): 3-9x at up to
# 0.3 M, 1.6-2.5x around 1-1.5 M, 1.0-1.4x at 2-5 M, 0.7-1.1x above.
AUTO_MAX_STEP_WORK = 1_500_000
# The lite periodic embedding's cost per row, per numeric column and frequency (a cosine, a
# sine and their share of the shared linear layer), in multiply-adds of the same measurement.
PLR_COST = 30
# Batch norm's per-unit statistics cost a population about as much again as its products.
BATCH_NORM_FACTOR = 2
Outcome = tuple[str, Any]  # ("complete", value) | ("pruned", exc) | ("fail", TrialFailed)


def can_share(objective: Objective, params: dict[str, Any], input_dim: int, auto: bool, numeric: int = 0) -> bool:
    """Whether this trial's network may train in a population (`numeric`: the table's numeric
    input columns, which a numerical embedding embeds)."""
    family = params.get("family", objective.model) if objective.model == "auto" else objective.model
    if family != "mlp" or objective.kind != "table" or objective.pretrained is not None or objective.multi:
        return False
    if objective.objectives is not None and objective.objectives.constraints:
        return False
    if population_key(params) is None:
        return False
    return not auto or step_work(params, input_dim, numeric) <= AUTO_MAX_STEP_WORK


def step_work(params: dict[str, Any], input_dim: int, numeric: int = 0) -> float:
    """What one training step of this MLP costs alone, in multiply-adds (see AUTO_MAX_STEP_WORK)."""
    from ..models.mlp import DEFAULTS, layer_widths

    params = {**RECIPE_DEFAULTS, **DEFAULTS, **params}
    per_row = 0.0
    if params["embedding"] != "none" and numeric:
        dim, frequencies = int(params["embedding_dim"]), int(params["embedding_frequencies"])
        input_dim += numeric * (dim - 1)
        per_row += numeric * frequencies * PLR_COST
    widths = [input_dim, *layer_widths(params), 1]
    per_row += sum(a * b for a, b in zip(widths, widths[1:], strict=False))
    if params["norm"] == "batch":
        per_row *= BATCH_NORM_FACTOR
    return float(params["batch_size"]) * per_row


def shape_of(trial: optuna.Trial, params: dict[str, Any]) -> dict[str, Any]:
    """The trial's values that its population's other members take as fixed."""
    searched = set(trial.params)
    return {name: params[name] for name in SHAPE if name in searched}


def train_population(objective: Objective, trials: Sequence[optuna.Trial]) -> list[Outcome]:
    """Train `trials` (sharing a population key) as one population per fold; one outcome each."""
    runs = [objective.start(trial) for trial in trials]
    for run in runs:
        run.in_population = True
    outcomes: list[Outcome | None] = [None] * len(runs)
    alive = list(range(len(runs)))
    for k, fold in enumerate(objective.folds):
        if k and any(runs[i].out_of_time() for i in alive):
            break
        members, heads = [], []
        reporters = [runs[i].reporter(k) for i in alive]
        deadlines = [runs[i].deadline for i in alive if runs[i].deadline is not None]
        try:
            for i in alive:
                module, head = objective.build(runs[i], k, fold)
                members.append(Member(module, runs[i].params, objective.seed + runs[i].trial.number))
                heads.append(head)
            results = fit_population(
                members, heads[0], fold.X_train, fold.y_train, X_val=fold.X_eval, y_val=fold.y_eval,
                metric=objective.metric, on_epoch_end=lambda m, epoch, logs, r=reporters: r[m](epoch, logs),
                deadline=min(deadlines) if deadlines else None, device=objective.device)
        except Exception as exc:  # not built, or not trained (out of memory, say): these trials fail
            for i in alive:
                outcomes[i] = ("fail", runs[i].failed(exc))
            return outcomes  # type: ignore[return-value]
        still = []
        for member, head, i, result in zip(members, heads, alive, results, strict=True):
            run = runs[i]
            try:
                if result.error is not None:
                    run.alone_seconds += float(result.seconds)
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
                 guard: Callable[[optuna.Trial], None], stop_at: Callable[[], float | None] | None = None) -> None:
        self.objective, self.size, self.auto, self.guard, self.stop_at = objective, size, auto, guard, stop_at
        split = objective.folds[0]
        self.input_dim = int(split.X_train.shape[1]) if split.X_train.ndim == 2 else 0
        extra = split.model_input().get("extra", {}) if objective.kind == "table" else {}
        self.numeric = int(extra.get("numeric_columns", 0))

    def fits_in_time(self, study: optuna.Study) -> int:
        """Under `auto`, at most as many members as lone trials would fit in the time left (a
        population trains them faster than one by one, so it ends before the budget does)."""
        due = self.stop_at() if self.stop_at is not None else None
        alone = [(t.datetime_complete - t.datetime_start).total_seconds()
                 for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if not t.user_attrs.get("population") and t.datetime_start and t.datetime_complete]
        if due is None or not alone:
            return self.size
        typical = sorted(alone)[len(alone) // 2]
        return max(1, int((due - time.monotonic()) / max(typical, 1e-3)))

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
        if room > 1 and not queued and can_share(self.objective, params, self.input_dim, self.auto, self.numeric):
            room = min(room, self.fits_in_time(study)) if self.auto else room
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
