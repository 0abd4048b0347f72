"""The auto strategy: its phases, its pruner's rule, and that both continue from the storage."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

import nntune
from nntune.search import AutoPruner, AutoSampler, starting_points
from nntune.search._auto import rungs, stand_in, startup_trials
from nntune.search._space import parse_space


def _study(curves: list[list[float]], direction: str = "maximize") -> optuna.Study:
    """A study of complete trials with these per-epoch curves (final value = last epoch)."""
    study = optuna.create_study(direction=direction)
    for i, curve in enumerate(curves):
        study.add_trial(create_trial(
            params={"x": i / len(curves)}, distributions={"x": FloatDistribution(0, 1)},
            value=curve[-1], intermediate_values={e: v for e, v in enumerate(curve, start=1)}))
    return study


def _running(study: optuna.Study, curve: list[float]) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    for epoch, value in enumerate(curve, start=1):
        trial.report(value, epoch)
    return study._storage.get_trial(trial._trial_id)


# ten trials whose score at every epoch ranks them as their final score does
ORDERED = [[0.1 * k + 0.01 * e for e in range(1, 21)] for k in range(1, 11)]


def test_rungs_skip_the_first_epochs():
    assert rungs(52) == [4, 8, 16, 32]
    assert rungs(3) == []


def test_pruner_stops_a_trial_behind_the_leaders_at_an_informative_rung():
    study = _study(ORDERED)
    pruner = AutoPruner(max_epochs=20, n_trials=50)
    behind = _running(study, [0.05 + 0.01 * e for e in range(1, 5)])  # below every trial at epoch 4
    assert pruner.prune(study, behind)
    # not at a step that is not a rung, nor a trial that is level with the third best
    assert not pruner.prune(study, _running(study, [0.05 + 0.01 * e for e in range(1, 6)]))
    assert not pruner.prune(study, _running(study, [0.8 + 0.01 * e for e in range(1, 5)]))


def test_pruner_waits_while_early_scores_do_not_predict_final_ones():
    # early scores rank the trials in reverse of their final scores: the rung is not informative
    crossing = [[1.0 - 0.1 * k if e <= 8 else 0.1 * k for e in range(1, 21)] for k in range(1, 11)]
    study = _study(crossing)
    assert not AutoPruner(max_epochs=20, n_trials=50).prune(study, _running(study, [0.0] * 4))


def test_pruner_minimizes_and_needs_a_budget():
    losses = [[10 - 0.1 * k - 0.01 * e for e in range(1, 21)] for k in range(10, 0, -1)]
    study = _study(losses, direction="minimize")
    worse = _running(study, [20.0] * 4)
    assert AutoPruner(max_epochs=20, n_trials=50).prune(study, worse)
    small = AutoPruner(max_epochs=20, n_trials=5)
    assert not small.active and not small.prune(study, worse)


def test_sampler_phases_follow_the_trials_in_the_storage():
    assert startup_trials(5) == 4 and startup_trials(50) == 10 and startup_trials(None) == 8
    sampler = AutoSampler(seed=0, n_trials=50, gp_max_trials=15)
    study = optuna.create_study(sampler=sampler)
    seen = []
    for _ in range(16):
        trial = study.ask()
        seen.append(sampler.phase(study))
        study.tell(trial, trial.suggest_float("x", 0, 1))
    assert seen[0] == "sobol" and seen[10] == "gp" and seen[15] == "tpe"


def test_starting_points_speak_the_space_s_names():
    space, _ = parse_space({
        "learning_rate": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
        "num_layers": {"type": "int", "low": 1, "high": 5},
        "max_units": {"type": "int", "low": 64, "high": 1024, "log": True},
        "momentum": {"type": "float", "low": 0.1, "high": 0.99},
    })
    points = starting_points(space)
    assert {"learning_rate": 1e-3, "num_layers": 2, "max_units": 128} in points
    assert {"learning_rate": 1e-2, "momentum": 0.9, "num_layers": 1, "max_units": 256} in points


def test_a_fixed_optimizer_keeps_only_its_own_starting_recipe():
    space, _ = parse_space({"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
                            "momentum": {"type": "float", "low": 0.1, "high": 0.99}})
    assert starting_points(space, fixed={"optimizer": "adam"}) == [{"lr": 1e-3}]
    assert starting_points(space, fixed={"optimizer": "sgd"}) == [{"lr": 1e-2, "momentum": 0.9}]
    assert len(starting_points(space)) == 2


@pytest.mark.slow
def test_tune_defaults_to_auto_and_a_small_budget_prunes_nothing(tmp_path):
    result = nntune.tune(dataset="iris", trials=5, max_epochs=10, out=tmp_path / "run")
    study = result.study
    assert study.user_attrs["config"]["search"]["strategy"] == "auto"
    assert isinstance(study.pruner, AutoPruner) and not study.pruner.active
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert result.test_scores["accuracy"] > 0.8


@pytest.mark.slow
def test_resumed_auto_study_continues_its_phases_and_rungs(tmp_path):
    """The phase comes from the trials stored, and the pruner judges new trials against the
    rung scores of the trials from before the resume."""
    run = dict(dataset="breast_cancer", max_epochs=10, out=tmp_path / "run", study="bc")
    nntune.tune(trials=12, **run)
    resumed = nntune.tune(trials=14, resume=True, **run)
    study = resumed.study
    assert len(study.trials) == 14
    assert study.sampler.phase(study) == "gp"
    # the new trials were asked of the GP (it records what it proposed), not of a restarted
    # Sobol sequence
    assert all(any(k.startswith("gp:relative_params") for k in t.system_attrs) for t in study.trials[12:])
    sobol_start = study.trials[:4]  # the start of a 12-trial budget
    assert not any(any(k.startswith("gp:relative_params") for k in t.system_attrs) for t in sobol_start)


def test_starting_points_turn_on_the_switches_their_recipe_uses():
    space, _ = parse_space({
        "use_dropout": {"type": "categorical", "choices": [False, True]},
        "dropout": {"type": "float", "low": 0.05, "high": 0.8, "when": {"use_dropout": True}},
        "lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
    })
    adam, sgd = starting_points(space)
    assert adam == {"use_dropout": True, "dropout": 0.1, "lr": 1e-3}  # the Adam recipe uses dropout 0.1
    assert sgd == {"use_dropout": False, "lr": 1e-2}                  # the SGD recipe none


def test_a_pruned_trial_stands_in_at_its_best_epoch_or_at_a_pessimistic_mean_of_its_folds():
    def pruned(values, **attrs):
        return create_trial(state=TrialState.PRUNED, intermediate_values=values, user_attrs=attrs)

    # one validation split: its best epoch, as curves rise
    assert stand_in(pruned({1: 0.3, 2: 0.5, 3: 0.4}), 1.0, []) == 0.5
    # losses over three folds, stopped in fold 1: fold 0's 0.30, fold 1's best so far 0.40, and
    # fold 2 (never trained) at the worse of the two
    fold_1 = pruned({12: 0.5, 13: 0.4}, fold_stride=11, n_folds=3, fold_scores=[0.30])
    assert stand_in(fold_1, -1.0, []) == pytest.approx((0.30 + 0.40 + 0.40) / 3)
