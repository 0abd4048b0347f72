"""nntune.optimize and the ask/tell Study: objective forms, budgets, errors, resume."""

from __future__ import annotations

import math

import optuna
import pytest

import nntune
from nntune.errors import ConfigError
from nntune.search import STRATEGIES, Budget

SPACE = {
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "x": {"type": "float", "low": 0.0, "high": 1.0},
    "kind": {"type": "categorical", "choices": ["a", "b"]},
}


def quality(config: dict) -> float:
    """Best at lr = 10**-2.5, x = 0.3, kind = b; 1.0 at the optimum."""
    return 1.0 - (math.log10(config["lr"]) + 2.5) ** 2 / 10 - (config["x"] - 0.3) ** 2 \
        - (0.1 if config["kind"] == "a" else 0.0)


def space_quantile(q: float) -> float:
    """The reference a search is judged against: the q-quantile of `quality` over uniform draws
    from SPACE (the best of 20 uniform draws falls below the 0.8-quantile with probability 1%)."""
    import numpy as np

    rng = np.random.default_rng(0)
    draws = [quality({"lr": 10 ** rng.uniform(-4, -1), "x": rng.uniform(), "kind": rng.choice(["a", "b"])})
             for _ in range(4000)]
    return float(np.quantile(draws, q))


def curve(config: dict, epochs: int = 20):
    """A rising learning curve that ends at `quality(config)`."""
    for epoch in range(1, epochs + 1):
        yield quality(config) * (1 - 0.5 ** epoch)


def test_budget_forms_and_errors():
    assert Budget.parse(30) == Budget(trials=30)
    assert Budget.parse("30 trials") == Budget(trials=30)
    assert Budget.parse("500 epochs") == Budget(epochs=500)
    assert Budget.parse("2m") == Budget(seconds=120.0)
    with pytest.raises(ConfigError, match=r"budget must be .*got 'lots'"):
        Budget.parse("lots")


@pytest.mark.parametrize("strategy", sorted(set(STRATEGIES) - {"grid"}))  # grid: below
def test_every_strategy_finds_a_good_region(strategy):
    result = nntune.optimize(lambda config: quality(config), SPACE, budget=20, strategy=strategy, seed=1)
    assert result.trials == 20
    # random search reaches this too on so easy a function; it checks the plumbing and direction
    assert result.best_score >= space_quantile(0.8)
    assert set(result.best_config) == {"lr", "x", "kind"}


def test_grid_and_minimize():
    space = {"x": {"type": "float", "low": 0.0, "high": 1.0, "grid": [0.0, 0.25, 0.5, 0.75, 1.0]}}
    result = nntune.optimize(lambda c: (c["x"] - 0.7) ** 2, space, budget=5, strategy="grid",
                             direction="minimize")
    assert result.best_config == {"x": 0.75}


def test_epochs_objective_pays_every_epoch_it_trains():
    calls = []

    def objective(config, epochs):
        calls.append(epochs)
        return quality(config) * (1 - 0.5 ** epochs)

    result = nntune.optimize(objective, SPACE, budget="100 epochs", max_epochs=20, seed=0)
    assert result.epochs == sum(calls) and sum(calls) - max(calls) < 100 <= sum(calls)
    assert all(e == 20 for e in calls)  # auto trains at full fidelity when it cannot resume


def test_epochs_objective_needs_max_epochs():
    with pytest.raises(ConfigError, match="max_epochs"):
        nntune.optimize(lambda config, epochs: 0.0, SPACE, budget=3)


def test_stepwise_objective_is_advanced_epoch_by_epoch_and_stopped():
    advanced = []

    def objective(config):
        for epoch, score in enumerate(curve(config), start=1):
            advanced.append(epoch)
            yield score

    # (auto's own pruning rule is tested in test_auto.py; here the loop's mechanics, quickly)
    result = nntune.optimize(objective, SPACE, budget="400 epochs", max_epochs=20, seed=0,
                             strategy="random", pruner="median")
    # every epoch nntune drew was paid for, and nothing beyond the budget's last trial
    assert result.epochs == len(advanced) and 400 <= result.epochs < 400 + 20
    states = [h["state"] for h in result.history]
    pruned = [h for h in result.history if h["state"] == "pruned"]
    assert states.count("complete") >= 5 and pruned, states
    # a pruned trial stopped at a rung, so it paid for fewer than max_epochs epochs
    trials = {t.number: t for t in result.study.trials}
    assert all(max(trials[h["number"]].intermediate_values) < 20 for h in pruned)
    assert result.best_score >= space_quantile(0.75)


def test_tiny_budget_prunes_nothing():
    result = nntune.optimize(lambda config: curve(config), SPACE, budget=5, max_epochs=20, seed=0)
    assert [h["state"] for h in result.history] == ["complete"] * 5


def test_failures_do_not_stop_the_search():
    def objective(config):
        if config["kind"] == "a":
            raise ValueError("this configuration diverged")
        return quality(config)

    result = nntune.optimize(objective, SPACE, budget=12, strategy="random", seed=0)
    failed = [h for h in result.history if h["state"] == "fail"]
    assert failed and all(h["reason"] == "this configuration diverged" for h in failed)
    assert result.best_config["kind"] == "b"


def test_space_from_yaml_and_bad_space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("search:\n  space:\n    x: {type: float, low: 0, high: 1}\n    units: 64\n")
    result = nntune.optimize(lambda c: -abs(c["x"] - 0.5) + c["units"] / 1e3, path, budget=10, seed=0)
    assert result.best_config["units"] == 64
    with pytest.raises(ConfigError, match="space file not found"):
        nntune.optimize(lambda c: 0.0, tmp_path / "missing.yaml", budget=2)
    with pytest.raises(ConfigError, match="direction must be one of maximize, minimize"):
        nntune.create_study(SPACE, direction="up")


def test_ask_tell_resumes_from_storage(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = nntune.create_study(SPACE, storage=url, study_name="mine", seed=0, n_trials=15)
    for _ in range(12):
        ask = study.ask()
        study.tell(ask, quality(ask.config))
    first_best = study.best_score
    again = nntune.create_study(SPACE, storage=url, study_name="mine", seed=0, n_trials=15)
    # the starting points are not queued twice and the auto sampler is past its Sobol start
    assert again.study.sampler.phase(again.study) == "gp"
    for _ in range(3):  # each a GP proposal: a second or more apiece
        ask = again.ask()
        study_value = quality(ask.config)
        again.tell(ask, study_value)
    loaded = optuna.load_study(study_name="mine", storage=url)
    assert len(loaded.trials) == 15 and again.best_score >= first_best
    with pytest.raises(ConfigError, match="tell needs a score"):
        again.tell(again.ask())


def test_tell_pruned_without_a_score_and_epoch_budget_with_plain_scores():
    study = nntune.create_study(SPACE, n_trials=5)
    ask = study.ask()
    study.tell(ask, pruned=True)
    assert study.study.trials[ask.number].state == optuna.trial.TrialState.PRUNED
    # a plain score is one full evaluation: an epoch budget of 5 x max_epochs buys 5 of them
    result = nntune.optimize(lambda config: quality(config), SPACE, budget="100 epochs", max_epochs=20,
                             strategy="random")
    assert result.trials == 5 and result.epochs == 100


def test_other_strategies_train_once_at_full_length_by_default():
    calls = []

    def objective(config, epochs):
        calls.append(epochs)
        return quality(config)

    nntune.optimize(objective, SPACE, budget=4, max_epochs=20, strategy="tpe")
    assert calls == [20, 20, 20, 20]  # 'auto' pruner with tpe is none: no from-scratch stages
