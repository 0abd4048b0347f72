"""`nntune compare`: the same budget per strategy and seed, statistics that follow from the runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from nntune.reports._compare import mean_ci, time_to_reach


def test_confidence_interval_is_students_t():
    mean, half = mean_ci([0.9, 0.8, 1.0])
    assert mean == pytest.approx(0.9)
    assert half == pytest.approx(stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3))
    assert mean_ci([0.7]) == (0.7, 0.0)


def test_time_to_reach_is_the_first_time_the_best_gets_there():
    seconds, best = np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.8, 0.9])
    assert time_to_reach(seconds, best, 0.8, maximize=True) == 2.0
    assert time_to_reach(seconds, best, 0.95, maximize=True) is None
    assert time_to_reach(seconds, -best, -0.8, maximize=False) == 2.0


@pytest.mark.slow
@pytest.mark.parametrize("dataset, metric", [("iris", "accuracy"), ("diabetes", "r2")])
def test_compare_runs_each_strategy_and_seed_and_reports_them(tmp_path, cli, open_report, dataset, metric):
    config = tmp_path / "one_split.yaml"  # the runs' statistics are under test, not how trials are scored
    config.write_text("search:\n  cv: none\n")
    code, out, err = cli("compare", config, "--dataset", dataset, "--strategies", "random,tpe", "--seeds", "2",
                         "--trials", "2", "--max-epochs", "3", "--threads", "1", "--out", tmp_path / "cmp")
    assert code == 0, err
    summary = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [row["strategy"] for row in summary["strategies"]] == ["random", "tpe"]
    assert sorted((r["strategy"], r["seed"]) for r in summary["runs"]) == [
        ("random", 0), ("random", 1), ("tpe", 0), ("tpe", 1)]
    for row in summary["strategies"]:
        scores = [r["test_scores"][metric] for r in summary["runs"] if r["strategy"] == row["strategy"]]
        assert (row["test"], row["test_ci"]) == pytest.approx(mean_ci(scores))
        assert row["trials"] == 2 and row["seeds"] == 2
        assert row["reached"] == "2/2"  # the default target is the score every run reached
    assert (tmp_path / "cmp" / "random-seed1" / "model" / "model.safetensors").exists()
    page = open_report(tmp_path / "cmp" / "compare.html")
    assert {f["key"] for f in page["figures"] if f["traces"] and f["drawn"]} == {"anytime", "test"}
    assert page["errors"] == [] and len(page["requests"]) == 1


def test_compare_refuses_an_unknown_strategy_before_running_anything(tmp_path, cli):
    code, out, err = cli("compare", "--dataset", "iris", "--strategies", "random,tpee", "--out", tmp_path / "c")
    assert code == 2 and "tpee" in err and "did you mean 'tpe'" in err
    assert not (tmp_path / "c").exists()
