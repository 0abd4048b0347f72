"""Pruning with k-fold cross-validation: the first fold as without folds, later folds epoch by
epoch against the same fold and epoch of other trials, and fold by fold against the best trial.

The objective reports fold k's epoch e at step `k * stride + e` (see `fold_stride`) and records
its layout and the scores of the folds it has finished as user attributes, read here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import optuna

from ..errors import ConfigError
from ._pruners import WARMUP_EPOCHS

TrialState = optuna.trial.TrialState
MAXIMIZE = optuna.study.StudyDirection.MAXIMIZE

# User attributes the objective writes: steps per fold, number of folds, finished fold scores.
STRIDE_ATTR, FOLDS_ATTR, SCORES_ATTR = "fold_stride", "n_folds", "fold_scores"

# One-sided p-value under which the signed-rank test calls a trial worse than the best. Stricter
# than Optuna's WilcoxonPruner default (0.1): folds share most training rows, so their
# differences are not independent, and a trial is tested again after every fold.
P_THRESHOLD = 0.05


def may_prune(pruner: optuna.pruners.BasePruner, step: int, stride: int | None = None) -> bool:
    """Whether `pruner` can prune a trial reporting at `step`, where it says (nntune's pruners);
    True for any other pruner. Asking costs the trial a read of the study from its storage."""
    check = getattr(pruner, "may_prune", None)
    if check is None:
        return True
    return check(step, stride) if isinstance(pruner, CrossValidationPruner) else check(step)


def fold_stride(max_epochs: int) -> int:
    """Steps set aside per fold: fold k's epoch e (from 1) is step `k * stride + e`. Fold 0 keeps
    plain epoch numbers, so single-split runs and the usual pruners see what they always saw."""
    return int(max_epochs) + 1


class CrossValidationPruner(optuna.pruners.BasePruner):
    """Wraps any Optuna pruner for a study whose trials train k folds one after another.

    - First fold: the wrapped pruner decides, unchanged.
    - Folds 1 to k-1, each epoch from `warmup_epochs` on (unless the wrapped pruner is a
      NopPruner): pruned when the trial's best score so far in this fold is worse than the
      `percentile` of complete trials' scores at the same step (same fold, same epoch); needs
      `n_min_trials` such trials. `percentile` defaults to the wrapped pruner's own (25 for
      nntune's 'percentile') and to the median for every other pruner.
    - At the end of a fold, once two or more folds are done: pruned when the trial is worse than
      the best complete trial on the same folds, by a one-sided exact Wilcoxon signed-rank test
      (p < `p_threshold`) or by being worse on every finished fold with a mean gap wider than the
      best trial's spread (standard deviation) across its folds.

    Trials without a fold layout (single split) are left to the wrapped pruner entirely. The
    run's plan wraps its pruner in one when `cv` is set and the pruner is not 'none'.

    >>> pruner = CrossValidationPruner(optuna.pruners.MedianPruner(n_warmup_steps=3))
    >>> study = optuna.create_study(direction="maximize", pruner=pruner)
    """

    def __init__(self, pruner: optuna.pruners.BasePruner, *, percentile: float | None = None,
                 n_min_trials: int = 5, warmup_epochs: int = WARMUP_EPOCHS,
                 p_threshold: float = P_THRESHOLD) -> None:
        if percentile is None:
            # Optuna keeps a PercentilePruner's percentile (MedianPruner's is 50) private.
            percentile = float(getattr(pruner, "_percentile", 50.0)) \
                if isinstance(pruner, optuna.pruners.PercentilePruner) else 50.0
        if not 0.0 <= percentile <= 100.0:
            raise ConfigError(f"The 'percentile' parameter of CrossValidationPruner must be within "
                              f"[0, 100]. Got {percentile} instead.")
        if n_min_trials < 1:
            raise ConfigError(f"The 'n_min_trials' parameter of CrossValidationPruner must be at "
                              f"least 1. Got {n_min_trials} instead.")
        if not 0.0 < p_threshold < 1.0:
            raise ConfigError(f"The 'p_threshold' parameter of CrossValidationPruner must be within "
                              f"(0, 1). Got {p_threshold} instead.")
        self.pruner = pruner
        self.percentile = percentile
        self.n_min_trials = n_min_trials
        self.warmup_epochs = warmup_epochs
        self.p_threshold = p_threshold
        # A NopPruner asks for no pruning within folds; the fold rule still applies.
        self.epoch_rule = not isinstance(pruner, optuna.pruners.NopPruner)

    def may_prune(self, step: int, stride: int | None) -> bool:
        """Whether an epoch's report at `step` can be pruned (the end-of-fold rule is asked apart):
        the wrapped pruner's answer on the first fold, the epoch rule's on the others."""
        fold, epoch = divmod(step, int(stride)) if stride else (0, step)
        if fold == 0:
            return may_prune(self.pruner, step)
        return self.epoch_rule and epoch >= self.warmup_epochs

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        stride = trial.user_attrs.get(STRIDE_ATTR)
        if step is None or not stride:
            return self.pruner.prune(study, trial)
        fold, epoch = divmod(step, int(stride))
        done = list(trial.user_attrs.get(SCORES_ATTR) or [])
        if len(done) > fold:  # called at the end of a fold: the fold rule
            return len(done) >= 2 and self._worse_on_folds(study, trial, done)
        if fold == 0:
            return self.pruner.prune(study, trial)
        return self.epoch_rule and epoch >= self.warmup_epochs \
            and self._worse_at_step(study, trial, fold, step)

    def _worse_at_step(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, fold: int, step: int) -> bool:
        """Best score so far in this fold against complete trials' scores at this very step."""
        stride = trial.user_attrs[STRIDE_ATTR]
        sign = _sign(study)
        own = [v for s, v in trial.intermediate_values.items() if fold * stride < s <= step]
        if any(math.isnan(v) for v in own):
            return True
        others = [t.intermediate_values[step] for t in _peers(study, trial)
                  if step in t.intermediate_values and not math.isnan(t.intermediate_values[step])]
        if len(others) < self.n_min_trials:
            return False
        # The score a trial must reach to stay in the best `percentile` percent at this step.
        cut = float(np.percentile(others, 100.0 - self.percentile if sign > 0 else self.percentile))
        return max(sign * v for v in own) < sign * cut  # in signed units: larger is better

    def _worse_on_folds(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, done: list[float]) -> bool:
        """The trial's finished folds against the best complete trial's scores on the same folds."""
        sign = _sign(study)
        best = _best_reference(study, trial, len(done), sign)
        if best is None:
            return False
        reference = [float(v) for v in best.user_attrs[SCORES_ATTR]]
        # Positive where the trial is worse than the best on that fold.
        gaps = sign * (np.asarray(reference[:len(done)]) - np.asarray(done, dtype=float))
        return worse_on_every_fold(gaps, float(np.std(reference, ddof=1))) \
            or signed_rank_p(gaps) < self.p_threshold


def worse_on_every_fold(gaps: np.ndarray, spread: float) -> bool:
    """Worse on every fold, and by more on average than the best trial's own fold-to-fold spread.
    For a trial exactly as good as the best, whose per-fold differences vary as much as the best
    trial's scores do, this happens by chance about 10% of the time after two folds, 5% after
    three and 2% after four (the spread estimated from five folds); a better trial, less often."""
    return len(gaps) >= 2 and bool(np.all(gaps > 0)) and float(np.mean(gaps)) > spread


def signed_rank_p(gaps: np.ndarray) -> float:
    """One-sided exact Wilcoxon signed-rank p-value that the gaps lie above zero. Ties with the
    best trial (zero gaps) keep their ranks but count for neither side (Pratt's method) rather
    than being dropped: a trial that matches the best on some folds gets a larger p-value."""
    if not np.any(gaps > 0):
        return 1.0
    from scipy import stats

    return float(stats.wilcoxon(gaps, alternative="greater", method="exact", zero_method="pratt").pvalue)


def _sign(study: optuna.Study) -> float:
    return 1.0 if study.direction == MAXIMIZE else -1.0


def _peers(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> Sequence[optuna.trial.FrozenTrial]:
    """Complete trials laid out like this one: their steps and folds mean the same."""
    layout = (trial.user_attrs.get(STRIDE_ATTR), trial.user_attrs.get(FOLDS_ATTR))
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if (t.user_attrs.get(STRIDE_ATTR), t.user_attrs.get(FOLDS_ATTR)) == layout]


def _best_reference(study: optuna.Study, trial: optuna.trial.FrozenTrial, n_done: int,
                    sign: float) -> optuna.trial.FrozenTrial | None:
    """The best complete, feasible trial with scores for at least the folds this one finished.
    Infeasible trials never serve: a feasible trial must not be pruned for trailing one the run
    cannot pick."""
    candidates = [t for t in _peers(study, trial)
                  if t.value is not None and len(t.user_attrs.get(SCORES_ATTR) or []) >= max(n_done, 2)]
    candidates.sort(key=lambda t: sign * t.value, reverse=True)
    return next((t for t in candidates if all(c <= 0 for c in getattr(t, "constraints", {}).values())), None)
