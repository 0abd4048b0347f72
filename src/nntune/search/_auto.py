"""`auto`: the default strategy, a sampler and a pruner that decide from the study itself.

The design follows what we measured on the LCBench surrogate (docs/strategies.md):

- Start from strong defaults (enqueued by the caller), then a short scrambled Sobol design, so
  the model-based phase starts from points spread over the whole space.
- Then Optuna's GP sampler (log expected improvement; pending trials of parallel workers are
  accounted for by the sampler). It was the strongest sampler from 25 full trainings up; it is
  cubic in the trials, so past GP_MAX_TRIALS finished trials the model switches to
  multivariate TPE, which is linear and keeps the overhead under a second per trial.
- A population's members after its first (trials trained together, search/_population.py) are
  drawn by the multivariate TPE in the GP phase too: it is fifty times cheaper per ask.
- Conditional parameters, which the GP's intersection space leaves out, are drawn by TPE
  (independent mode), which models each parameter on the trials that have it.
- The pruner stops a trial only at a rung (epochs 4, 8, 16, ... from WARMUP_EPOCHS on: the
  first epochs say little about the last) and only while the study shows that rung to be
  informative: the rank correlation between the rung's scores and the final scores of the
  complete trials must reach MIN_RANK_CORRELATION. Small budgets prune nothing.

Everything is derived from the storage (phase from the trial counts, rungs from the reported
values), so a resumed or shared study continues where it was.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState
from scipy.stats import spearmanr

from ..models import family_names, get_family
from ._cv_pruning import FOLDS_ATTR, SCORES_ATTR, STRIDE_ATTR
from ._pruners import WARMUP_EPOCHS

GP_MAX_TRIALS = 100
MIN_RANK_CORRELATION = 0.6
MIN_COMPLETE_FOR_PRUNING = (4, 6)  # complete trials before pruning: a quarter of the budget, within these
SMALLEST_PRUNED_BUDGET = 6  # trials planned; fewer leave nothing to save
TOP_TRIALS = 3
# The system attribute that marks a population's members after its first (search/_population.py),
# asked in one burst. The GP phase samples them with its TPE: the GP's acquisition search takes
# 0.3-0.8 s per ask on one thread here (the more running trials it accounts for, the longer),
# so 15 members would cost more than their population trains on a small table; TPE, with the
# running members as constant liars, takes 15-30 ms each and spreads them apart.
MEMBER_ATTR = "nntune:population_member"


def startup_trials(n_trials: int | None) -> int:
    """Length of the space-filling start (defaults included): a fifth of the budget, 4..10."""
    if n_trials is None:
        return 8
    return int(min(10, max(4, round(n_trials / 5))))


class AutoSampler(optuna.samplers.BaseSampler):
    """Sobol start, then a GP, then multivariate TPE once the GP would be slow."""

    def __init__(self, seed: int | None = None, n_trials: int | None = None,
                 n_startup_trials: int | None = None, gp_max_trials: int = GP_MAX_TRIALS) -> None:
        self._n_startup = n_startup_trials if n_startup_trials is not None else startup_trials(n_trials)
        self._gp_max = gp_max_trials
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            conditional = optuna.samplers.TPESampler(seed=seed, n_startup_trials=self._n_startup)
            self._phases: dict[str, optuna.samplers.BaseSampler] = {
                "sobol": optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed,
                                                    independent_sampler=conditional,
                                                    warn_independent_sampling=False),
                "gp": optuna.samplers.GPSampler(seed=seed, n_startup_trials=0, independent_sampler=conditional,
                                                warn_independent_sampling=False),
                "tpe": optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                                  n_startup_trials=0, constant_liar=True),
            }
        self._phase_of: dict[int, str] = {}

    def phase(self, study: optuna.Study) -> str:
        """'sobol', 'gp' or 'tpe', from the number of finished trials in the storage."""
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        complete = sum(t.state == TrialState.COMPLETE for t in trials)
        if len(trials) < self._n_startup or complete < 2:
            return "sobol"
        return "gp" if len(trials) < self._gp_max else "tpe"

    def _sampler(self, study: optuna.Study, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        if trial.number not in self._phase_of:
            phase = self.phase(study)
            if phase == "gp" and MEMBER_ATTR in trial.system_attrs:
                phase = "tpe"
            self._phase_of[trial.number] = phase
        return self._phases[self._phase_of[trial.number]]

    def _view(self, study: optuna.Study, trial: FrozenTrial) -> optuna.Study:
        """What the phase's sampler sees (see SamplerView): failed configurations count for the
        GP and TPE alike, pruned trials for the GP (TPE models pruned trials itself)."""
        phase = self._phase_of.get(trial.number)
        return SamplerView(study, pruned=phase == "gp") if phase in ("gp", "tpe") else study

    def reseed_rng(self) -> None:
        for sampler in self._phases.values():
            sampler.reseed_rng()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        sampler = self._sampler(study, trial)
        return sampler.infer_relative_search_space(self._view(study, trial), trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        sampler = self._sampler(study, trial)
        return sampler.sample_relative(self._view(study, trial), trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        sampler = self._sampler(study, trial)
        return sampler.sample_independent(self._view(study, trial), trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._sampler(study, trial).before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._sampler(study, trial).after_trial(study, trial, state, values)
        self._phase_of.pop(trial.number, None)


class SamplerView:
    """A study as the model-based phases see it. Optuna's samplers model complete trials only
    (TPE pruned ones too) and skip failed ones, so a configuration that diverges is proposed
    again and again: on small regression tables a third to two thirds of a minute's trials
    failed that way (the GP kept returning to SGD at its largest learning rate). Here:

    - a trial that failed for a reason of its own (diverged, a bad combination: `fail_reason`
      set, not a surplus trial, not a dead worker's) counts as complete at the worst score of
      the trials seen, so the model learns that region is bad;
    - with `pruned`, each pruned trial counts as complete at a pessimistic stand-in for its
      final score (`stand_in`): without it the GP learns nothing from a pruned trial and
      proposes the same point again.

    (Optuna's samplers read trials through `Study._get_trials`; this view overrides just that
    and forwards everything else.)"""

    def __init__(self, study: optuna.Study, pruned: bool = True) -> None:
        self._study = study
        self._pruned = pruned

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = False, states: Sequence[TrialState] | None = None,
                    use_cache: bool = False) -> list[FrozenTrial]:
        sign = 1.0 if self._study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
        trials = self._study._get_trials(deepcopy=deepcopy, states=None, use_cache=use_cache)
        complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None
                    and math.isfinite(t.value)]
        shown = []
        for t in trials:
            value = stand_in(t, sign, complete) if self._pruned and t.state == TrialState.PRUNED else None
            shown.append(t if value is None else _completed(t, value))
        valued = [t for t in shown if t.state == TrialState.COMPLETE and t.value is not None
                  and math.isfinite(t.value)]
        if valued:
            worst = sign * min(sign * t.value for t in valued)
            # Only failures that sampled every parameter the complete trials share: one that
            # failed before would shrink the space the samplers model (their intersection).
            shared = set.intersection(*(set(t.distributions) for t in valued))
            shown = [_completed(t, worst) if _failed_on_its_own(t) and shared <= set(t.distributions)
                     else t for t in shown]
        return [t for t in shown if states is None or t.state in states]

    def get_trials(self, deepcopy: bool = True, states: Sequence[TrialState] | None = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)


def _failed_on_its_own(trial: FrozenTrial) -> bool:
    """Failed because of its configuration (the objective recorded why), not because its worker
    died or the budget was already taken."""
    return (trial.state == TrialState.FAIL and "fail_reason" in trial.user_attrs
            and not trial.user_attrs.get("surplus"))


def stand_in(trial: FrozenTrial, sign: float, complete: Sequence[FrozenTrial]) -> float | None:
    """What a pruned trial is shown as: no more than it could honestly claim (None: it reported
    nothing). A complete trial scores the mean of its folds (a single split is one fold), so the
    stand-in is a mean over all of the trial's folds: each finished fold at its score, the fold it
    was stopped in at its best epoch so far (curves rise), and each fold it never started at its
    own worst fold so far. (Its best epoch over all folds would let one easy fold make it a
    leader.) And a pruned trial was stopped for trailing, so it is never shown above the best
    complete trial of the moment it was pruned."""
    folds = _fold_scores(trial, sign)
    if not folds:
        return None
    n_folds = max(int(trial.user_attrs.get(FOLDS_ATTR) or 1), len(folds))
    value = (sum(folds) + min(folds) * (n_folds - len(folds))) / n_folds
    leader = _leader_when_pruned(trial, sign, complete)
    return sign * (value if leader is None else min(value, leader))


def _fold_scores(trial: FrozenTrial, sign: float) -> list[float]:
    """The folds the trial trained, in signed units (larger is better): its finished folds as
    recorded, then the fold it was stopped in at its best epoch so far."""
    done = [sign * float(v) for v in trial.user_attrs.get(SCORES_ATTR) or [] if math.isfinite(v)]
    stride = trial.user_attrs.get(STRIDE_ATTR)  # none without folds: every step is fold 0's
    first, last = (len(done) * stride, (len(done) + 1) * stride) if stride else (0, math.inf)
    current = [sign * v for step, v in trial.intermediate_values.items()
               if first < step < last and math.isfinite(v)]
    return done + [max(current)] if current else done


def _leader_when_pruned(trial: FrozenTrial, sign: float, complete: Sequence[FrozenTrial]) -> float | None:
    """The best signed score among the trials complete when `trial` was pruned."""
    when = trial.datetime_complete
    scores = [sign * t.value for t in complete
              if when is None or t.datetime_complete is None or t.datetime_complete <= when]
    return max(scores, default=None)


def _completed(trial: FrozenTrial, value: float) -> FrozenTrial:
    return FrozenTrial(number=trial.number, state=TrialState.COMPLETE, value=value,
                       datetime_start=trial.datetime_start, datetime_complete=trial.datetime_complete,
                       params=trial.params, distributions=trial.distributions, user_attrs=trial.user_attrs,
                       system_attrs=trial.system_attrs, intermediate_values=trial.intermediate_values,
                       trial_id=trial._trial_id)


def rungs(max_epochs: int) -> list[int]:
    """Epochs at which the auto pruner may stop a trial: 4, 8, 16, ... below max_epochs."""
    out, epoch = [], max(WARMUP_EPOCHS + 1, 4)
    while epoch < max_epochs:
        out.append(epoch)
        epoch *= 2
    return out


class AutoPruner(optuna.pruners.BasePruner):
    """Stop a trial at a rung when its score there is worse than every one of the `top` best
    complete trials scored at the same rung, but only where the study shows the rung predicts
    the final score (rank correlation over the complete trials) and the budget is large enough
    for the saved epochs to buy other trials. Conservative on purpose: the model-based sampler
    learns only from complete trials, so a pruned good trial is lost twice."""

    def __init__(self, max_epochs: int, n_trials: int | None = None, top: int = TOP_TRIALS) -> None:
        self._rungs = set(rungs(max_epochs))
        self.active = n_trials is None or n_trials >= SMALLEST_PRUNED_BUDGET  # False: prunes nothing
        low, high = MIN_COMPLETE_FOR_PRUNING
        # Small budgets must decide early; larger ones can afford a surer correlation.
        self._min_complete = high if n_trials is None else min(high, max(low, n_trials // 4))
        self._top = top

    def may_prune(self, step: int) -> bool:
        """Whether `prune` can say yes at this step (only at rungs): the trial then need not read
        the study back from the storage to ask."""
        return self.active and step in self._rungs

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if not self.active or step is None or step not in self._rungs:
            return False
        value = trial.intermediate_values[step]
        if not math.isfinite(value):
            return True
        sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
        complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                    if t.value is not None and step in t.intermediate_values]
        if len(complete) < self._min_complete or not _informative(complete, step):
            return False
        leaders = sorted(complete, key=lambda t: -sign * t.value)[:self._top]
        return all(sign * value < sign * t.intermediate_values[step] for t in leaders)


def _informative(complete: list[FrozenTrial], step: int) -> bool:
    """Whether the scores at `step` rank the complete trials as their final scores do."""
    at_step = [t.intermediate_values[step] for t in complete]
    final = [t.value for t in complete]
    if len(set(at_step)) < 2 or len(set(final)) < 2:
        return False
    rho = spearmanr(at_step, final).statistic
    return bool(np.isfinite(rho) and rho >= MIN_RANK_CORRELATION)


# Other names the same quantities go by in users' spaces.
ALIASES = {"learning_rate": "lr", "num_layers": "n_layers", "layers": "n_layers", "max_units": "units",
           "hidden_size": "units", "width": "units", "max_dropout": "dropout"}
# The recipes for a network that is no registered family (a build function, or a bare space as
# in ask/tell) or a family that declares none: the mlp's, the starts practitioners use, in names
# users' spaces share (lr, n_layers, units, ...).
GENERAL_RECIPES_FAMILY = "mlp"


def family_recipes(space: Mapping[str, Any], family: Any = None,
                   fixed: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The starting recipes of the run's `family`, which each family declares itself
    (`nntune.models.Family.starting_points`). Family 'auto': the first recipe (for the optimizer
    the run fixes, if any) of every family the space chooses among, each with its `family` value
    (one each, so the sampler still gets most of the start), or all the recipes of the one family
    the user's space fixes."""
    if family == "auto":
        spec = space.get("family")
        if spec is not None and spec.choices is not None:
            firsts = ((name, next((r for r in _recipes_of(name) if _fits(r, fixed)), None)) for name in spec.choices)
            return [{**recipe, "family": name} for name, recipe in firsts if recipe is not None]
        family = (fixed or {}).get("family")
    return [dict(recipe) for recipe in _recipes_of(family)]


def _recipes_of(family: Any) -> tuple[Mapping[str, Any], ...]:
    own = get_family(family).starting_points if isinstance(family, str) and family in family_names() else ()
    return own or get_family(GENERAL_RECIPES_FAMILY).starting_points


def starting_points(space: dict, recipes: Sequence[Mapping[str, Any]] | None = None,
                    fixed: dict[str, Any] | None = None, family: Any = None,
                    rows: int | None = None) -> list[dict[str, Any]]:
    """The starting recipes in terms of `space`: parameters it searches (also under common
    aliases), values inside their ranges; a point that names nothing in the space is dropped,
    and so is a recipe for another optimizer than the one the run fixes (its learning rate
    belongs to that optimizer). `recipes`: by default those of the run's `family` (see
    `family_recipes`). `rows`: the training rows, to scale each recipe's batch (`scaled_batch`)."""
    if recipes is None:
        recipes = family_recipes(space, family, fixed)
    points = []
    for recipe in recipes:
        if not _fits(recipe, fixed):
            continue
        if rows is not None and "batch_size" in recipe:
            recipe = {**recipe, "batch_size": scaled_batch(int(recipe["batch_size"]), rows)}
        point: dict[str, Any] = {}
        for name, spec in space.items():
            value = _value(recipe, name)
            if value is None or spec.per_layer:
                continue
            if spec.type == "categorical":
                if value in spec.choices:
                    point[name] = value
            elif spec.low <= value <= spec.high:
                point[name] = int(value) if spec.type == "int" else float(value)
        for name, spec in space.items():  # on/off switches (cocktails): on where the recipe uses it
            value = _value(recipe, name)
            for parent, wanted in (spec.when or {}).items():
                switch = space.get(parent)
                if value is not None and wanted is True and parent not in recipe and switch is not None \
                        and set(switch.choices or []) == {False, True}:
                    point[parent] = bool(value)
        # What the run fixes overrides the recipe: a parameter whose condition the fixed values
        # rule out is left out of the point.
        point = {k: v for k, v in point.items() if space[k].matches({**recipe, **(fixed or {}), **point})}
        if point and point not in points:
            points.append(point)
    return points


# A recipe's batch is measured on tables of a few thousand rows; on more, an epoch at that
# batch is thousands of steps, and a minute's budget ends inside the first trial (41,757 rows
# at batch 64: one trial in 60 s). Above STEPS_PER_EPOCH steps the batch doubles, up to the
# largest batch the default space offers, as RealMLP and TabM train at 256 on every table.
STEPS_PER_EPOCH = 256
MAX_SCALED_BATCH = 512


def scaled_batch(batch: int, rows: int) -> int:
    """`batch`, doubled until an epoch of `rows` takes at most STEPS_PER_EPOCH steps (at most
    MAX_SCALED_BATCH; never smaller than `batch`)."""
    while batch < MAX_SCALED_BATCH and rows > STEPS_PER_EPOCH * batch:
        batch *= 2
    return batch


def _fits(recipe: Mapping[str, Any], fixed: Mapping[str, Any] | None) -> bool:
    """Whether the recipe is for the optimizer the run fixes (if any): its rate belongs to it."""
    optimizer = (fixed or {}).get("optimizer")
    return optimizer is None or recipe.get("optimizer", optimizer) == optimizer


def _value(recipe: Mapping[str, Any], name: str) -> Any:
    """The recipe's value for the space's `name`: under that name (a family's own `layers`),
    else under the name it is an alias of."""
    return recipe[name] if name in recipe else recipe.get(ALIASES.get(name, name))
