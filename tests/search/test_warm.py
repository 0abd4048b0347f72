"""Warm start: an earlier study's best configurations become a new study's first trials."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import create_trial

import nntune
from nntune.errors import ConfigError
from nntune.search import parse_space, warm_start_points

SPACE, FIXED = parse_space({
    "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
    "momentum": {"type": "float", "low": 0.5, "high": 0.99, "when": {"optimizer": "sgd"}},
})


def _earlier(direction: str = "maximize") -> optuna.Study:
    study = optuna.create_study(direction=direction)
    dists = {"lr": FloatDistribution(1e-5, 1.0, log=True),
             "optimizer": CategoricalDistribution(["adam", "sgd", "rmsprop"]),
             "momentum": FloatDistribution(0.0, 1.0)}
    rows = [(0.9, {"lr": 1e-3, "optimizer": "sgd", "momentum": 0.9}),
            (0.8, {"lr": 0.5, "optimizer": "adam"}),          # lr outside this run's range
            (0.95, {"lr": 3e-3, "optimizer": "rmsprop"}),     # optimizer this run does not search
            (0.5, {"lr": 2e-4, "optimizer": "adam"})]
    for value, params in rows:
        study.add_trial(create_trial(params=params, distributions={k: dists[k] for k in params}, value=value))
    return study


def test_best_first_and_only_what_the_space_accepts():
    points = warm_start_points(_earlier(), SPACE, FIXED, "maximize", k=3)
    assert points == [{"lr": 3e-3}, {"lr": 1e-3, "optimizer": "sgd", "momentum": 0.9}, {"optimizer": "adam"}]


def test_a_study_of_the_other_direction_is_refused():
    with pytest.raises(ConfigError, match="not the same metric"):
        warm_start_points(_earlier("minimize"), SPACE, FIXED, "maximize")


@pytest.mark.slow
def test_tune_tries_the_earlier_run_s_best_first(tmp_path):
    first = nntune.tune(dataset="iris", trials=4, max_epochs=4, cv="none", out=tmp_path / "first", report=False)
    second = nntune.tune(dataset="iris", trials=2, max_epochs=4, cv="none", out=tmp_path / "second",
                         warm_start=str(tmp_path / "first"), report=False)
    opening = second.study.trials[0]
    assert opening.params == first.best_trial.params
    assert opening.user_attrs["warm_start"] == str(tmp_path / "first")
    with pytest.raises(ConfigError, match="neither a run directory"):
        nntune.tune(dataset="iris", trials=2, out=tmp_path / "third", warm_start=str(tmp_path / "nowhere"))
    assert not (tmp_path / "third").exists()  # refused before anything was written
