"""Several objectives: validation of names and constraints, and the rules that pick a model."""

from __future__ import annotations

import optuna
import pytest

import nntune
from nntune.search import make_objectives, pick_trial


def trial(number: int, values: list[float], **attrs) -> optuna.trial.FrozenTrial:
    frozen = optuna.trial.create_trial(values=values, user_attrs=attrs)
    frozen.number = number
    return frozen


@pytest.mark.parametrize("names, constraints, pick, message", [
    (["params", "accuracy"], [], "first", "first objective must be the run's metric 'accuracy'"),
    (["accuracy", "parms"], [], "first", "did you mean 'params'"),
    (["accuracy", "params", "params"], [], "first", "must not repeat"),
    (["accuracy", "params"], ["params < 5"], "first", "not of the form NAME<=NUMBER"),
    (["accuracy", "params"], ["size<=5"], "first", "constraint name"),
    (["accuracy", "params"], ["params<=1e"], "first", "has no number after <="),
    (["accuracy", "params"], [], "elbow", "pick"),
])
def test_bad_objectives_are_refused_with_the_accepted_values(names, constraints, pick, message):
    with pytest.raises(nntune.ConfigError, match=message):
        make_objectives("accuracy", "maximize", names, constraints, pick)


def test_constraints_are_optuna_violations():
    objectives = make_objectives("accuracy", "maximize", ["accuracy", "params"], ["params<=1000", "accuracy>=0.9"],
                                 "first")
    check = objectives.constraints_func()
    assert check(trial(0, [0.95, 500], n_params=500)) == [-500.0, pytest.approx(-0.05)]
    assert check(trial(1, [0.85, 2000], n_params=2000)) == [1000.0, pytest.approx(0.05)]


def test_pick_rules():
    front = [trial(0, [0.99, 90000], val_loss=0.1), trial(1, [0.97, 3000], val_loss=0.2),
             trial(2, [0.80, 100], val_loss=0.5)]
    rule = lambda pick: make_objectives("accuracy", "maximize", ["accuracy", "params"], [], pick)  # noqa: E731
    assert pick_trial(front, rule("first")).number == 0
    assert pick_trial(front, rule("params")).number == 2
    assert pick_trial(front, rule("knee")).number == 1  # close to the best of both


def test_cli_refuses_bad_objectives_before_writing_anything(tmp_path, cli):
    code, out, err = cli("tune", "--dataset", "iris", "--objectives", "accuracy,parms", "--out", tmp_path / "r")
    assert code == 2 and "did you mean 'params'" in err and not (tmp_path / "r").exists()
    code, out, err = cli("tune", "--dataset", "iris", "--objectives", "accuracy,params", "--pruner", "median",
                         "--out", tmp_path / "r")
    assert code == 2 and "use --pruner none with --objectives" in err
    code, out, err = cli("tune", "--dataset", "iris", "--objectives", "accuracy,params", "--strategy", "cmaes",
                         "--out", tmp_path / "r")
    assert code == 2 and "optimizes one objective" in err and not (tmp_path / "r").exists()


def test_a_resumed_study_keeps_its_objectives(tmp_path):
    common = {"dataset": "iris", "trials": 2, "max_epochs": 3, "out": tmp_path / "run", "study": "s", "report": False}
    nntune.tune(objectives="accuracy,params", **common)
    with pytest.raises(nntune.ConfigError, match=r"another configuration \(search.objectives: stored "
                                                 r"\[\"accuracy\",\"params\"\], now \[\"accuracy\",\"latency\"\]"):
        nntune.tune(objectives="accuracy,latency", resume=True, **{**common, "trials": 3})


def test_no_trial_meeting_the_constraints_is_said_plainly(tmp_path):
    with pytest.raises(nntune.NntuneError, match="none of the 2 complete trials met the constraints"):
        nntune.tune(dataset="iris", trials=2, max_epochs=3, constraints=["params<=1"], out=tmp_path / "run",
                    report=False)


def test_a_run_is_read_from_any_directory(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    nntune.tune(dataset="iris", trials=2, max_epochs=3, cv="none", out="runs/iris", report=False)  # relative URL
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = cli("show", tmp_path / "runs" / "iris")
    assert code == 0 and "best validation" in out


def test_compare_refuses_several_objectives_before_running(tmp_path):
    with pytest.raises(nntune.ConfigError, match="compare ranks strategies on one score"):
        nntune.compare(dataset="iris", config={"search": {"objectives": ["accuracy", "params"]}},
                       out=tmp_path / "cmp")
    assert not (tmp_path / "cmp").exists()
