"""CrossValidationPruner: the fold-by-fold and epoch-by-epoch rules on hand-made studies, and one
short cross-validated run that prunes beyond its first fold."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

import nntune
from nntune.search import CrossValidationPruner
from nntune.search._auto import SamplerView
from nntune.search._cv_pruning import fold_stride, signed_rank_p

TrialState = optuna.trial.TrialState
MAX_EPOCHS = 10
STRIDE = fold_stride(MAX_EPOCHS)  # 11: fold 1's epoch 5 is step 16


def layout(n_folds: int) -> dict:
    return {"fold_stride": STRIDE, "n_folds": n_folds}


def curve(per_fold: list[float], epochs: int = MAX_EPOCHS) -> dict[int, float]:
    """A flat curve per fold at the fold's score, at the steps the objective reports."""
    return {k * STRIDE + e: score for k, score in enumerate(per_fold) for e in range(1, epochs + 1)}


def add_complete(study: optuna.Study, fold_scores: list[float], **attrs) -> None:
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.COMPLETE, value=float(np.mean(fold_scores)), intermediate_values=curve(fold_scores),
        user_attrs={**layout(len(fold_scores)), "fold_scores": fold_scores, **attrs}))


def running(n_folds: int, values: dict[int, float], done: list[float] | None = None) -> optuna.trial.FrozenTrial:
    """The trial being judged: reported `values` so far, `done` the folds it has finished."""
    attrs = {**layout(n_folds), **({"fold_scores": done} if done is not None else {})}
    return optuna.trial.create_trial(state=TrialState.RUNNING, intermediate_values=values, user_attrs=attrs)


def fold_end(n_folds: int, done: list[float]) -> optuna.trial.FrozenTrial:
    """A trial at the end of its last finished fold: every finished fold's curve reported."""
    return running(n_folds, curve(done), done)


class Recording(optuna.pruners.BasePruner):
    """An inner pruner that prunes everything it is asked about, and remembers the steps."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def prune(self, study, trial) -> bool:
        self.steps.append(trial.last_step)
        return True


# The best trial scores 0.90-0.94 over five folds (spread, the sample std: about 0.016).
BEST = [0.92, 0.90, 0.94, 0.91, 0.93]


@pytest.fixture
def study() -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    add_complete(study, BEST)
    add_complete(study, [0.80, 0.78, 0.83, 0.79, 0.81])
    return study


def test_worse_on_every_finished_fold_by_more_than_the_spread_is_pruned(study):
    pruner = CrossValidationPruner(optuna.pruners.MedianPruner())
    assert pruner.prune(study, fold_end(5, [0.85, 0.84]))
    assert pruner.prune(study, fold_end(5, [0.85, 0.84, 0.86]))


def test_better_on_one_fold_or_within_noise_is_not_pruned(study):
    pruner = CrossValidationPruner(optuna.pruners.MedianPruner())
    assert not pruner.prune(study, fold_end(5, [0.95, 0.84]))  # better on fold 0
    assert not pruner.prune(study, fold_end(5, [0.91, 0.89]))  # worse by 0.01, within the spread
    assert not pruner.prune(study, fold_end(5, [0.92, 0.85]))  # a tie on fold 0
    assert not pruner.prune(study, fold_end(5, [0.70]))  # one fold says too little


def test_the_signed_rank_test_prunes_a_trial_worse_on_nearly_every_fold():
    study = optuna.create_study(direction="maximize")
    best = [0.90, 0.80, 0.95, 0.85, 0.92, 0.88, 0.90, 0.86, 0.93, 0.87]  # spread about 0.04
    add_complete(study, best)
    # Worse by 0.02-0.03 on five folds, better by 0.01 on one: the gap is within the spread,
    # but the one-sided exact test gives p = 2/64.
    trial = [0.87, 0.78, 0.92, 0.83, 0.90, 0.89]
    gaps = np.array(best[:6]) - np.array(trial)
    assert signed_rank_p(gaps) == pytest.approx(2 / 64)
    assert CrossValidationPruner(optuna.pruners.MedianPruner()).prune(study, fold_end(10, trial))
    # The same trial after four folds: p = 1/16 is not below 0.05, and the gap is within the spread.
    assert not CrossValidationPruner(optuna.pruners.MedianPruner()).prune(study, fold_end(10, trial[:4]))


def test_the_fold_rule_compares_with_the_best_feasible_trial_only():
    study = optuna.create_study(direction="maximize")
    add_complete(study, [0.80, 0.81, 0.79])
    infeasible = optuna.trial.create_trial(
        state=TrialState.COMPLETE, value=0.99, intermediate_values=curve([0.99] * 3),
        user_attrs={**layout(3), "fold_scores": [0.99] * 3}, system_attrs={"constraints:n_params<=1000": 5.0})
    study.add_trial(infeasible)
    assert not CrossValidationPruner(optuna.pruners.MedianPruner()).prune(study, fold_end(3, [0.80, 0.80]))


def test_minimize_prunes_the_larger_losses():
    study = optuna.create_study(direction="minimize")
    add_complete(study, [0.30, 0.32, 0.29, 0.31])
    pruner = CrossValidationPruner(optuna.pruners.MedianPruner())
    assert pruner.prune(study, fold_end(4, [0.40, 0.41]))
    assert not pruner.prune(study, fold_end(4, [0.25, 0.26]))  # better: smaller losses


def epoch_study(direction: str, fold0: float, fold1: float, n: int = 5) -> optuna.Study:
    """`n` complete three-fold trials that score `fold0` all through fold 0 and `fold1` all
    through fold 1 (and are best overall, so the fold rule never intervenes)."""
    study = optuna.create_study(direction=direction)
    for _ in range(n):
        add_complete(study, [fold0, fold1, fold1])
    return study


def in_fold_1(epoch: int, value: float) -> optuna.trial.FrozenTrial:
    """A trial in fold 1 (after a fold 0 that matched the others), at `epoch` with `value`."""
    return running(3, {**curve([0.80]), **{STRIDE + e: value for e in range(1, epoch + 1)}}, done=[0.80])


def test_fold_1_is_compared_with_fold_1_at_the_same_epoch():
    pruner = CrossValidationPruner(optuna.pruners.MedianPruner())
    # The others reach 0.9 in fold 1 (0.8 in fold 0): 0.85 at fold 1's epoch 5 is below them.
    assert pruner.prune(epoch_study("maximize", 0.80, 0.90), in_fold_1(5, 0.85))
    # The others reach 0.7 in fold 1 (0.9 in fold 0): 0.85 is above them, however fold 0 went.
    assert not pruner.prune(epoch_study("maximize", 0.90, 0.70), in_fold_1(5, 0.85))


def test_the_epoch_rule_waits_for_warm_up_and_enough_trials():
    pruner = CrossValidationPruner(optuna.pruners.MedianPruner())
    study = epoch_study("maximize", 0.80, 0.90)
    assert not pruner.prune(study, in_fold_1(2, 0.10))  # epochs 1-2 of every fold: warm-up
    assert pruner.prune(study, in_fold_1(3, 0.10))
    assert not pruner.prune(epoch_study("maximize", 0.80, 0.90, n=4), in_fold_1(5, 0.10))


def test_the_epoch_rule_respects_minimize():
    pruner = CrossValidationPruner(optuna.pruners.MedianPruner())
    study = epoch_study("minimize", 0.30, 0.20)
    assert pruner.prune(study, in_fold_1(5, 0.25))
    assert not pruner.prune(study, in_fold_1(5, 0.15))


def test_fold_0_belongs_to_the_inner_pruner_and_later_folds_do_not():
    inner = Recording()
    pruner = CrossValidationPruner(inner)
    study = epoch_study("maximize", 0.80, 0.90)
    assert pruner.prune(study, running(3, {e: 0.8 for e in range(1, 6)}))
    assert inner.steps == [5]
    assert not pruner.prune(study, in_fold_1(5, 0.95))
    assert not pruner.prune(study, fold_end(3, [0.80]))  # end of fold 0: not an epoch to judge
    assert inner.steps == [5]
    # Without a fold layout (one validation split) the inner pruner decides everything.
    assert pruner.prune(study, optuna.trial.create_trial(state=TrialState.RUNNING, intermediate_values={25: 0.9}))
    assert inner.steps == [5, 25]


def test_no_pruner_within_folds_still_prunes_between_folds(study):
    pruner = CrossValidationPruner(optuna.pruners.NopPruner())
    study_1 = epoch_study("maximize", 0.80, 0.90)
    assert not pruner.prune(study_1, in_fold_1(5, 0.10))
    assert pruner.prune(study, fold_end(5, [0.85, 0.84]))


def test_percentile_follows_the_inner_pruner():
    assert CrossValidationPruner(optuna.pruners.PercentilePruner(25.0)).percentile == 25.0
    assert CrossValidationPruner(optuna.pruners.MedianPruner()).percentile == 50.0
    assert CrossValidationPruner(optuna.pruners.SuccessiveHalvingPruner()).percentile == 50.0
    with pytest.raises(nntune.ConfigError, match="'percentile' parameter .* Got 120"):
        CrossValidationPruner(optuna.pruners.MedianPruner(), percentile=120)


def prune_at_fold_end(study: optuna.Study, n_folds: int, done: list[float]) -> float:
    """Run a trial through its `done` folds; the study's pruner must stop it at the end of the
    last one. Returns the score the auto strategy's GP is shown for it."""
    trial = study.ask()
    for key, value in {**layout(n_folds), "fold_scores": done}.items():
        trial.set_user_attr(key, value)
    for step, value in curve(done).items():
        trial.report(value, step)
    assert trial.should_prune()
    study.tell(trial, state=TrialState.PRUNED)
    shown = SamplerView(study).get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return next(t.value for t in shown if t.number == trial.number)


def test_a_trial_pruned_for_trailing_the_leader_is_not_shown_to_the_gp_as_a_new_leader():
    """The 'trust' issue's case: fold 0 is easy (0.94, the leader 0.95 there), fold 1 is not
    (0.87 against 0.91), and the fold rule prunes the trial. Its best epoch over both folds,
    0.94, would show it to the GP above the leader's 0.922."""
    study = optuna.create_study(direction="maximize", pruner=CrossValidationPruner(optuna.pruners.MedianPruner()))
    add_complete(study, [0.95, 0.91, 0.93, 0.90, 0.92])  # the leader: mean 0.922
    add_complete(study, [0.80, 0.78, 0.83, 0.79, 0.81])
    shown = prune_at_fold_end(study, 5, [0.94, 0.87])
    assert shown < 0.922
    # its two folds, and the three it never trained at its worst fold's score
    assert shown == pytest.approx((0.94 + 4 * 0.87) / 5)


def test_a_pruned_trial_is_never_shown_above_the_leader_it_trailed():
    # The leader's first two folds are its easiest by far (mean 0.6 over ten folds): a trial
    # at 0.7 on both trails it by more than its spread, yet 0.7 on every fold would top 0.6.
    study = optuna.create_study(direction="maximize", pruner=CrossValidationPruner(optuna.pruners.MedianPruner()))
    add_complete(study, [1.0, 1.0] + [0.5] * 8)
    assert prune_at_fold_end(study, 10, [0.7, 0.7]) == pytest.approx(0.6)


@pytest.mark.slow
def test_a_cross_validated_run_prunes_after_its_first_fold(tmp_path):
    result = nntune.tune(dataset="iris", cv=3, pruner="median", trials=8, strategy="random",
                         max_epochs=6, patience=6, seed=0, out=tmp_path / "run", report=False, threads=1)
    stride = fold_stride(6)
    assert isinstance(result.study.pruner, CrossValidationPruner)
    pruned = [t for t in result.study.trials if t.state == TrialState.PRUNED]
    assert pruned
    assert any(t.last_step >= stride for t in pruned)  # pruned in fold 2 or 3, or between folds
    best = result.study.best_trial
    assert len(best.user_attrs["fold_scores"]) == 3
    assert max(best.intermediate_values) > 2 * stride  # every fold's curve was reported
