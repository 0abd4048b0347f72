"""The auto strategy: its phases, its pruner's rule, and that both continue from the storage."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

import nntune
from nntune.config import RunConfig
from nntune.execution._plan import space_for
from nntune.models import Family, _registry, family_names, get_family
from nntune.search import AutoPruner, AutoSampler, starting_points
from nntune.search._auto import MEMBER_ATTR, SamplerView, rungs, scaled_batch, stand_in, startup_trials
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


# The two recipes practitioners start from (the mlp family declares them): the mapping tests below
# pass them explicitly, so a recipe the mlp adds changes nothing here.
PRACTITIONER_RECIPES = (
    {"optimizer": "adam", "lr": 1e-3, "n_layers": 2, "units": 128, "activation": "relu",
     "dropout": 0.1, "norm": "none", "batch_size": 64, "schedule": "constant", "weight_decay": 1e-5},
    {"optimizer": "sgd", "lr": 1e-2, "momentum": 0.9, "n_layers": 1, "units": 256,
     "activation": "relu", "dropout": 0.0, "norm": "batch", "batch_size": 64,
     "schedule": "cosine", "weight_decay": 1e-4},
)


def test_starting_points_speak_the_space_s_names():
    space, _ = parse_space({
        "learning_rate": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
        "num_layers": {"type": "int", "low": 1, "high": 5},
        "max_units": {"type": "int", "low": 64, "high": 1024, "log": True},
        "momentum": {"type": "float", "low": 0.1, "high": 0.99},
    })
    points = starting_points(space, PRACTITIONER_RECIPES)
    assert {"learning_rate": 1e-3, "num_layers": 2, "max_units": 128} in points
    assert {"learning_rate": 1e-2, "momentum": 0.9, "num_layers": 1, "max_units": 256} in points


def test_a_fixed_optimizer_keeps_only_its_own_starting_recipe():
    space, _ = parse_space({"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
                            "momentum": {"type": "float", "low": 0.1, "high": 0.99}})
    assert starting_points(space, PRACTITIONER_RECIPES, fixed={"optimizer": "adam"}) == [{"lr": 1e-3}]
    assert starting_points(space, PRACTITIONER_RECIPES, fixed={"optimizer": "sgd"}) == [{"lr": 1e-2, "momentum": 0.9}]
    assert len(starting_points(space, PRACTITIONER_RECIPES)) == 2


def test_a_recipe_s_conditional_value_is_left_out_where_the_run_fixes_its_condition_otherwise():
    space, _ = parse_space({"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
                            "embedding_scale": {"type": "float", "low": 0.01, "high": 10.0,
                                                "when": {"embedding": "plr_lite"}}})
    recipes = [{"lr": 2e-3, "embedding": "plr_lite", "embedding_scale": 0.1},
               {"lr": 2e-3, "embedding": "plr_lite", "embedding_scale": 1.0}]
    assert starting_points(space, recipes) == [{"lr": 2e-3, "embedding_scale": 0.1},
                                               {"lr": 2e-3, "embedding_scale": 1.0}]
    # embedding fixed to none: the scales mean nothing, and the two recipes are one
    assert starting_points(space, recipes, fixed={"embedding": "none"}) == [{"lr": 2e-3}]


def test_a_recipes_batch_grows_only_where_an_epoch_would_take_thousands_of_steps():
    assert scaled_batch(64, 150) == 64 and scaled_batch(64, 16_000) == 64  # up to 256 steps: as measured
    assert scaled_batch(64, 33_405) == 256  # beijing's training rows: 131 steps instead of 522
    assert scaled_batch(64, 10**7) == 512 and scaled_batch(1024, 10**7) == 1024  # the cap never shrinks a batch
    space, _ = parse_space({"batch_size": {"type": "categorical", "choices": [32, 64, 128, 256, 512]},
                            "lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}})
    recipes = [{"optimizer": "adam", "lr": 1e-3, "batch_size": 64}]
    assert starting_points(space, recipes) == [{"batch_size": 64, "lr": 1e-3}]
    assert starting_points(space, recipes, rows=100_000) == [{"batch_size": 512, "lr": 1e-3}]


@pytest.mark.slow
def test_tune_defaults_to_auto_and_a_small_budget_prunes_nothing(tmp_path):
    from sklearn.linear_model import LogisticRegression

    from nntune.data import encode_split, load_tabular, split_train_test

    result = nntune.tune(dataset="iris", trials=5, max_epochs=20, report=False, out=tmp_path / "run")
    study = result.study
    assert study.user_attrs["config"]["search"]["strategy"] == "auto"
    assert isinstance(study.pruner, AutoPruner) and not study.pruner.active
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    table = load_tabular(dataset="iris")
    split = encode_split(table, *split_train_test(table, 0.2, 0))
    linear = LogisticRegression(max_iter=1000).fit(split.X_train, split.y_train).score(split.X_eval, split.y_eval)
    assert result.test_scores["accuracy"] >= linear - 0.07  # (0.97 here; the majority class 0.33)


@pytest.mark.slow
def test_resumed_auto_study_continues_its_phases_and_rungs(tmp_path):
    """The phase comes from the trials stored, and the pruner judges new trials against the
    rung scores of the trials from before the resume."""
    # One validation split and three epochs a trial: the phases and rungs are under test, not folds.
    run = dict(dataset="breast_cancer", max_epochs=3, cv="none", report=False, out=tmp_path / "run", study="bc")
    nntune.tune(trials=12, **run)
    resumed = nntune.tune(trials=14, resume=True, **run)
    study = resumed.study
    assert len(study.trials) == 14
    assert study.sampler.phase(study) == "gp"
    # the new trials were asked of the GP (it records what it proposed), not of a restarted
    # Sobol sequence; a population's members after its first, of the GP phase's TPE
    new = [t for t in study.trials[12:] if MEMBER_ATTR not in t.system_attrs]
    assert new and all(any(k.startswith("gp:relative_params") for k in t.system_attrs) for t in new)
    sobol_start = study.trials[:4]  # the start of a 12-trial budget
    assert not any(any(k.startswith("gp:relative_params") for k in t.system_attrs) for t in sobol_start)


def test_starting_points_turn_on_the_switches_their_recipe_uses():
    space, _ = parse_space({
        "use_dropout": {"type": "categorical", "choices": [False, True]},
        "dropout": {"type": "float", "low": 0.05, "high": 0.8, "when": {"use_dropout": True}},
        "lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
    })
    adam, sgd = starting_points(space, PRACTITIONER_RECIPES)
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


# -- starting recipes: each family's own (nntune.models.Family.starting_points)

def default_space(family: str, kind: str) -> tuple[dict, dict]:
    """The space and fixed values a run of `family` on `kind` data searches by default."""
    cfg = RunConfig()
    cfg.model.family = family
    return space_for(cfg, None, kind)


@pytest.mark.parametrize("family", family_names())
def test_every_family_s_recipes_lie_in_its_default_space(family):
    """The contract of a family's recipes, checked for every registered family (one added later
    too): a recipe names only what the family's default space searches for some kind of data the
    family takes, with every value inside its range, and it sets every unconditional entry of
    that space (the family's, the training recipe's and the kind's: seq_len, lookback), so its
    trial draws nothing at random."""
    spec = get_family(family)
    spaces = {kind: default_space(family, kind) for kind in spec.data_kinds}
    searched = set().union(*(space for space, _ in spaces.values()))
    for recipe in spec.starting_points:
        assert set(recipe) <= searched, f"{family}: {sorted(set(recipe) - searched)} searched for no kind"
        for kind, (space, fixed) in spaces.items():
            expected = {k: v for k, v in recipe.items() if k in space and space[k].matches(recipe)}
            assert starting_points(space, [recipe], fixed) == [expected], f"{family} on {kind}"
            unconditional = {k for k, entry in space.items() if not entry.when}
            assert unconditional <= set(recipe), \
                f"{family} on {kind}: {sorted(unconditional - set(recipe))} left to chance"


def test_a_run_starts_from_its_own_family_s_recipes():
    space, fixed = default_space("gnn", "graph")
    gcn, gat, sage = starting_points(space, fixed=fixed, family="gnn")
    # Kipf & Welling's GCN first (a graph's batch is every node, so the recipe sets none)
    assert gcn == {"conv": "gcn", "layers": 2, "hidden": 16, "dropout": 0.5, "activation": "relu",
                   "optimizer": "adam", "lr": 0.01, "weight_decay": 5e-4, "schedule": "constant"}
    assert gat["conv"] == "gat" and gat["heads"] == 8 and sage["conv"] == "sage"
    # a network of the user's own (no family) starts from the general recipes, the mlp's
    mlp_space, _ = default_space("mlp", "table")
    assert starting_points(mlp_space, family=lambda params: None) == starting_points(mlp_space, family="mlp")


def test_family_auto_starts_from_one_recipe_of_each_family():
    space, fixed = default_space("auto", "signal")
    points = starting_points(space, fixed=fixed, family="auto")
    assert [p["family"] for p in points] == family_names("signal")
    for point in points:
        own_space, own_fixed = default_space(point["family"], "signal")
        first = starting_points(own_space, fixed=own_fixed, family=point["family"])[0]
        assert {k: v for k, v in point.items() if k != "family"} == first
    # with the optimizer fixed, each family's first recipe for that optimizer
    adam = starting_points(space, fixed={**fixed, "optimizer": "adam"}, family="auto")
    assert [p["family"] for p in adam] == family_names("signal")
    assert all(p["optimizer"] == "adam" for p in adam) and adam[0]["lr"] == 0.01  # the MNIST-1D paper's CNN


def test_a_family_that_declares_no_recipes_starts_from_the_general_ones(monkeypatch):
    plain = Family("plain", build=lambda params, meta: None, space={"width": {"type": "int", "low": 8, "high": 64}})
    assert plain.starting_points == ()
    monkeypatch.setitem(_registry._FAMILIES, "plain", plain)
    space, _ = parse_space({"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}})
    general = starting_points(space, family="mlp")
    assert general and starting_points(space, family="plain") == general


def _signals(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(0, 0.1, (n, 1, 32)).astype(np.float32)
    y = np.arange(n) % 2
    X[y == 1, 0, 8:14] += 1.0
    return X, y


@pytest.mark.slow
@pytest.mark.parametrize("family", ["cnn", "auto"])
def test_a_new_study_tries_the_family_s_recipes_first(tmp_path, family):
    X, y = _signals()
    np.savez(tmp_path / "signals.npz", X=X, y=y)
    space, fixed = default_space(family, "signal")
    expected = starting_points(space, fixed=fixed, family=family)
    result = nntune.tune(tmp_path / "signals.npz", family=family, trials=len(expected), max_epochs=1, threads=1,
                         pruner="none", cv="none", report=False, out=tmp_path / "run")
    assert [t.params for t in result.study.trials] == expected
    if family == "auto":
        assert [p["family"] for p in expected] == family_names("signal")
    # a budget smaller than the recipes queues only what it runs (no trial is left waiting)
    short = nntune.tune(tmp_path / "signals.npz", family=family, trials=1, max_epochs=1, threads=1,
                        cv="none", report=False, out=tmp_path / "short")
    assert [t.params for t in short.study.trials] == expected[:1]


# -- failed configurations: the model-based phases see them (search/_auto.py SamplerView)

def _failed(study: optuna.Study, x: float, **attrs) -> None:
    study.add_trial(create_trial(state=TrialState.FAIL, params={"x": x},
                                 distributions={"x": FloatDistribution(0, 1)}, user_attrs=attrs))


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_a_configuration_that_failed_is_shown_to_the_samplers_at_the_worst_score(direction):
    study = _study([[0.5], [0.8]], direction=direction)
    _failed(study, 0.9, fail_reason="TrainingDiverged: training loss became nan in epoch 2")
    _failed(study, 0.7, fail_reason="surplus: taken", surplus=True)  # the budget was taken
    _failed(study, 0.6)  # its worker died: queued again, says nothing of the configuration
    shown = {t.number: t for t in SamplerView(study).get_trials(deepcopy=False)}
    worst = 0.5 if direction == "maximize" else 0.8
    assert shown[2].state == TrialState.COMPLETE and shown[2].value == worst
    assert shown[3].state == shown[4].state == TrialState.FAIL
    complete = SamplerView(study, pruned=False).get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert [t.number for t in complete] == [0, 1, 2]


def test_the_auto_strategy_stops_proposing_a_region_where_trials_fail():
    """Optuna's GP and TPE skip failed trials: where a fifth of the space diverges, the GP kept
    proposing it (32 of 40 trials failed on this objective, seeds 0-2). Shown at the worst
    score, the region is left after a few trials, and the optimum (x = 0.15) is found."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    def objective(trial):
        x = trial.suggest_float("x", 1e-4, 1.0, log=True)
        y = trial.suggest_float("y", 0, 1)
        if x > 0.2:
            trial.set_user_attr("fail_reason", "TrainingDiverged: validation r2 became nan in epoch 2")
            raise RuntimeError("diverged")
        return -((x - 0.15) ** 2) - (y - 0.5) ** 2

    study = optuna.create_study(direction="maximize", sampler=AutoSampler(seed=0, n_trials=30))
    study.optimize(objective, n_trials=30, catch=(RuntimeError,))
    failed = sum(t.state == TrialState.FAIL for t in study.trials)
    assert failed <= 6, failed
    assert study.best_value > -0.01
