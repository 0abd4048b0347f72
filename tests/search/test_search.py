from __future__ import annotations

import optuna
import pytest

from nntune.config import ParamSpec
from nntune.errors import ConfigError
from nntune.search import (
    PRUNERS,
    STRATEGIES,
    make_pruner,
    make_sampler,
    resolve_space,
    suggest,
)

SPACE_ENTRIES = {
    "n_layers": {"type": "int", "low": 0, "high": 3},
    "units": {"type": "int", "low": 8, "high": 64, "log": True, "per_layer": True},
    "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": "sgd"}},
}


def run(strategy, n=12, entries=SPACE_ENTRIES):
    space, fixed = resolve_space({}, entries)
    study = optuna.create_study(sampler=make_sampler(strategy, 0, space, fixed))
    seen = []

    def objective(trial):
        params = suggest(trial, space, fixed)
        seen.append(params)
        return params["lr"] + 0.01 * params.get("n_layers", 0)

    study.optimize(objective, n_trials=n)
    return seen


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_strategy_contract(strategy):
    """Every strategy samples only inside the space and honours conditions and per-layer units."""
    for params in run(strategy):
        assert 0 <= params["n_layers"] <= 3
        assert 1e-4 <= params["lr"] <= 1e-1
        assert ("momentum" in params) == (params["optimizer"] == "sgd")
        units = [k for k in params if k.startswith("units_")]
        assert len(units) == params["n_layers"]
        assert all(8 <= params[k] <= 64 for k in units)


def test_grid_walks_the_grid_without_repeats():
    entries = {"optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
               "lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}}
    seen = run("grid", n=6, entries=entries)
    combos = {(p["optimizer"], round(p["lr"], 6)) for p in seen}
    assert combos == {(o, lr) for o in ("adam", "sgd") for lr in (0.001, 0.01, 0.1)}


# Momentum applies only with SGD, units_i only below n_layers: 28 distinct configurations
# (n_layers 0, 1, 2 with 1 + 2 + 4 unit settings; Adam, or SGD at three momenta), where the plain
# product of the axes (n_layers x units_0 x units_1 x optimizer x momentum) has 72.
CONDITIONAL = {
    "n_layers": {"type": "int", "low": 0, "high": 2},
    "units": {"type": "int", "low": 8, "high": 32, "per_layer": True, "grid": [8, 32]},
    "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
    "momentum": {"type": "float", "low": 0.5, "high": 0.9, "when": {"optimizer": "sgd"}},
    "lr": 0.01,
}


def _configuration(params):
    return tuple(sorted(params.items()))


def test_grid_trains_each_distinct_configuration_once():
    seen = [_configuration(p) for p in run("grid", n=200, entries=CONDITIONAL)]  # stops when exhausted
    assert len(seen) == len(set(seen)) == 28
    from nntune.search._strategies import planned_trials

    space, fixed = resolve_space({}, CONDITIONAL)
    assert planned_trials("grid", space, fixed, None) == 28  # the grid size nntune plans and reports
    assert planned_trials("grid", space, fixed, 10) == 10 and planned_trials("tpe", space, fixed, None) is None


def test_workers_sharing_a_grid_take_turns_without_repeats():
    space, fixed = resolve_space({}, CONDITIONAL)
    storage = optuna.storages.InMemoryStorage()
    workers = [optuna.create_study(storage=storage, study_name="grid", sampler=make_sampler("grid", 0, space, fixed))]
    workers.append(optuna.load_study(storage=storage, study_name="grid",
                                     sampler=make_sampler("grid", 0, space, fixed, worker=1)))
    seen = []
    while not workers[0].sampler.is_exhausted(workers[0]) and len(seen) < 100:
        running = [(study, study.ask()) for study in workers]  # both trials run at once
        for study, trial in running:
            seen.append(_configuration(suggest(trial, space, fixed)))
            try:
                study.tell(trial, 0.0)
            except RuntimeError as exc:  # the grid stops the study at its last point (see Study.tell)
                assert "Study.stop" in str(exc)
    assert len(seen) == len(set(seen)) == 28


def test_user_space_extends_replaces_and_fixes():
    defaults = {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
                "dropout": {"type": "float", "low": 0.0, "high": 0.5}}
    space, fixed = resolve_space(defaults, {"lr": 0.003, "units": {"type": "int", "low": 4, "high": 8}})
    assert set(space) == {"dropout", "units"} and fixed == {"lr": 0.003}
    space, fixed = resolve_space(defaults, {"units": {"type": "int", "low": 4, "high": 8}}, "replace")
    assert set(space) == {"units"} and not fixed


def test_condition_on_unknown_parameter_is_refused():
    with pytest.raises(ConfigError, match="'momentum' has when: \\{optimiser: ...\\}, but 'optimiser'"):
        resolve_space({}, {"momentum": {"type": "float", "low": 0.5, "high": 0.9,
                                        "when": {"optimiser": "sgd"}}})


def test_unknown_names_are_refused_with_a_hint():
    with pytest.raises(ConfigError, match="strategy must be one of .*got 'tpee'.*did you mean 'tpe'"):
        make_sampler("tpee", 0, {})
    with pytest.raises(ConfigError, match="pruner must be one of .*did you mean 'hyperband'"):
        make_pruner("hyperbnd", 10)


def test_samplers_and_pruners_accept_instances():
    sampler = optuna.samplers.RandomSampler()
    assert make_sampler(sampler, 0, {}) is sampler
    assert isinstance(make_pruner("hyperband", 50), optuna.pruners.HyperbandPruner)
    assert set(PRUNERS) == {"auto", "none", "median", "percentile", "successive_halving", "hyperband"}
    # 'auto' is the strategy's choice: the auto pruner with the auto strategy, else none
    assert type(make_pruner("auto", 50, strategy="auto", n_trials=50)).__name__ == "AutoPruner"
    assert isinstance(make_pruner("auto", 50, strategy="tpe"), optuna.pruners.NopPruner)


def test_median_pruner_stops_a_bad_curve():
    study = optuna.create_study(direction="maximize", pruner=make_pruner("median", 20))
    for _ in range(6):
        trial = study.ask()
        for epoch in range(1, 11):
            trial.report(0.9, epoch)
        study.tell(trial, 0.9)
    trial = study.ask()
    pruned_at = None
    for epoch in range(1, 11):
        trial.report(0.1, epoch)
        if trial.should_prune():
            pruned_at = epoch
            break
    assert pruned_at == 3  # the first warm-up epochs are never pruned


def test_param_spec_matches_lists():
    spec = ParamSpec(type="float", low=0, high=1, when={"optimizer": ["sgd", "rmsprop"]})
    assert spec.matches({"optimizer": "rmsprop"}) and not spec.matches({"optimizer": "adam"})


def test_best_trial_breaks_ties_by_validation_loss():
    from nntune.search import best_trial

    study = optuna.create_study(direction="maximize")
    for value, loss in [(0.9, 0.1), (1.0, 0.30), (1.0, 0.05), (1.0, 0.20)]:
        trial = study.ask()
        trial.set_user_attr("val_loss", loss)
        study.tell(trial, value)
    assert best_trial(study).number == 2
    assert best_trial(optuna.create_study()) is None
