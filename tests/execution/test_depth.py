"""Depth search (strategy "depth"): the stopping rule, where it stops on problems whose depth is
known, what it records, and the errors for what it cannot search.

The end-to-end runs stay small (300 rows, 30 epochs, 3 trials of 3 folds per depth, one main
trial on one validation split) and use a journal file, whose writes are cheap next to SQLite's
(one per epoch per trial).
"""

from __future__ import annotations

import json

import numpy as np
import optuna
import pandas as pd
import pytest

import nntune
from nntune.execution import DepthSearch, depth_study
from nntune.execution._depth import improves, stopping_index
from nntune.reports import run_report
from nntune.search import get_storage

# Fast, reliable convergence for tiny runs: Adam at a high learning rate, small batches.
QUICK_SPACE = {"lr": {"type": "float", "low": 3e-2, "high": 1e-1, "log": True}, "batch_size": 32,
               "optimizer": "adam"}
QUICK = dict(max_epochs=30, patience=5, seed=0, trials=1)


def _point(depth: int, score: float | None, se: float | None = 0.0) -> dict:
    return {"depth": depth, "score": score, "se": se}


def _frame(label: np.ndarray, X: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    frame["y"] = label
    return frame


def _depth_run(frame: pd.DataFrame, tmp_path, depth_max: int = 2, **options) -> nntune.TuneResult:
    search = {"depth_trials": 3, "depth_max": depth_max}
    # cv "none": the depths are still scored on k folds (STAGE_FOLDS, 3), which the depth search
    # is about; the main trials and the final model train on one split, not cv auto's five folds.
    options = {"space": QUICK_SPACE, "report": False, "cv": "none", "threads": 1, **QUICK, **options}
    return nntune.tune(frame, target="y", strategy="depth", out=tmp_path / "run", study="run",
                       storage=str(tmp_path / "run" / "study.journal"), config={"search": search}, **options)


# -- the rule ------------------------------------------------------------------------------------

def test_a_deeper_network_must_beat_the_shallower_by_more_than_its_standard_error():
    # (Scores in binary fractions, so that "exactly one SE" is exact.)
    assert improves(_point(1, 0.875), _point(0, 0.75, se=0.0625), "maximize")
    assert not improves(_point(1, 0.78125), _point(0, 0.75, se=0.0625), "maximize")
    assert not improves(_point(1, 0.8125), _point(0, 0.75, se=0.0625), "maximize")  # exactly one SE: not enough
    assert not improves(_point(1, 0.5), _point(0, 0.75, se=0.0625), "maximize")
    # Lower is better for losses and errors.
    assert improves(_point(1, 0.25), _point(0, 0.5, se=0.125), "minimize")
    assert not improves(_point(1, 0.375), _point(0, 0.5, se=0.125), "minimize")  # exactly one SE
    assert not improves(_point(1, 0.75), _point(0, 0.5, se=0.125), "minimize")
    # A depth without a complete trial has no score: it never improves; anything improves on it.
    assert not improves(_point(1, None, None), _point(0, 0.5), "maximize")
    assert improves(_point(1, 0.5), _point(0, None, None), "maximize")


def test_the_search_keeps_the_depth_before_the_first_that_does_not_improve():
    curve = [_point(0, 0.60, 0.01), _point(1, 0.80, 0.02), _point(2, 0.81, 0.02), _point(3, 0.95, 0.01)]
    assert stopping_index(curve, "maximize") == 1  # depth 3 is never reached
    assert stopping_index(curve[:2], "maximize") is None  # every depth so far improved
    assert stopping_index([_point(0, 1.0, 0.1), _point(1, 0.5, 0.1)], "minimize") is None


# -- bad input -----------------------------------------------------------------------------------

def test_depth_search_refuses_what_it_cannot_search(tmp_path):
    frame = _frame(np.arange(40) % 2, np.random.default_rng(0).normal(size=(40, 3)))
    run = tmp_path / "run"
    cases = [
        ({"space": {"n_layers": 2}}, "searches n_layers, but n_layers is fixed at 2 .search.space fixes it."),
        ({"space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-1}}, "space_mode": "replace"},
         "fixed at 2 .it is not in the searched space."),
        ({"objectives": "accuracy,params"}, "compares depths on one score"),
        ({"config": {"search": {"depth_max": 1}},
          "space": {"n_layers": {"type": "int", "low": 2, "high": 4}}}, r"depth_max must be at least .* \(2\); got 1"),
        ({"space": {"n_layers": {"type": "float", "low": 0, "high": 2}}}, "needs whole numbers"),
        ({"build_model": lambda hp: None}, "custom build_model"),
    ]
    for options, message in cases:
        with pytest.raises(nntune.ConfigError, match=message):
            nntune.tune(frame, target="y", strategy="depth", out=run, **options)
        assert not run.exists()  # checked before anything is written


def test_cli_says_why_in_one_line_with_exit_code_2(cli, tmp_path):
    frame = _frame(np.arange(40) % 2, np.random.default_rng(0).normal(size=(40, 3)))
    frame.to_csv(tmp_path / "t.csv", index=False)
    config = tmp_path / "config.yaml"
    config.write_text("search:\n  space:\n    n_layers: 1\n")
    code, _, err = cli("tune", config, "--data", tmp_path / "t.csv", "--target", "y", "--strategy", "depth",
                       "--out", tmp_path / "run")
    assert code == 2 and "strategy 'depth' searches n_layers" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


# -- end to end ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_linear_target_stops_at_zero_hidden_layers(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = X @ np.array([1.0, -2.0, 0.5, 1.5, -1.0]) + rng.normal(0, 1.0, 300)
    result = _depth_run(_frame(y, X), tmp_path)
    curve = result.to_json()["depth_curve"]
    assert [p["depth"] for p in curve] == [0, 1]  # depth 1 did not beat depth 0 by one SE: stop
    assert [p["chosen"] for p in curve] == [True, False]
    assert curve[1]["score"] <= curve[0]["score"] + curve[0]["se"]
    networks = getattr(result.model.module, "members", [result.model.module])  # fold models, or one
    assert result.model.info["params"]["n_layers"] == 0 and all(len(n.blocks) == 0 for n in networks)


@pytest.mark.slow
def test_xor_needs_a_hidden_layer_and_the_run_records_its_depth_search(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))  # x0 * x1 decides; x2..x4 are noise
    space = {**QUICK_SPACE, "units": {"type": "int", "low": 8, "high": 32, "per_layer": True}}
    result = _depth_run(_frame((X[:, 0] * X[:, 1] > 0).astype(int), X), tmp_path, space=space, report=True)

    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    curve = saved["depth_curve"]
    chosen = [p["depth"] for p in curve if p["chosen"]]
    assert chosen and chosen[0] >= 1
    assert curve[1]["score"] > curve[0]["score"] + curve[0]["se"] + 0.2  # depth 0 is clearly worse
    assert [p["depth"] for p in curve] == list(range(len(curve))) and all(p["trials"] == 3 for p in curve)
    depth = chosen[0]

    storage = get_storage(result.storage)
    names = {s.study_name for s in storage.get_all_studies()}
    assert names == {"run", *(depth_study("run", p["depth"]) for p in curve)}
    main = optuna.load_study(study_name="run", storage=storage)
    assert main.user_attrs["depth_curve"] == curve
    # The final model and every main trial have the chosen depth, per-layer widths expanded for it.
    networks = getattr(result.model.module, "members", [result.model.module])  # fold models, or one
    assert result.model.info["params"]["n_layers"] == depth
    assert all(len(n.blocks) == depth for n in networks)
    assert {f"units_{i}" for i in range(depth)} <= set(result.best_params)
    assert "n_layers" not in result.best_params and f"units_{depth}" not in result.best_params

    html = (tmp_path / "run" / "report.html").read_text()
    assert "class='figure' data-key='depth'" in html and "data-key='history'" in html
    shown = run_report(saved, [])
    assert any("depth search" in str(getattr(part, "title", "")) for part in shown.renderables)

    # Resumed: the depth studies continue (nothing to add), the main study gets its one more trial.
    with pytest.raises(nntune.StudyExistsError, match="--resume"):
        _depth_run(_frame((X[:, 0] * X[:, 1] > 0).astype(int), X), tmp_path, space=space)
    again = _depth_run(_frame((X[:, 0] * X[:, 1] > 0).astype(int), X), tmp_path, space=space,
                       resume=True, trials=2)
    assert again.to_json()["depth_curve"] == curve
    assert again.n_trials == {"complete": 2}
    for point in curve:
        assert len(optuna.load_study(study_name=point["study"], storage=storage).trials) == 3


def test_depth_search_of_other_strategies_is_none():
    assert DepthSearch.of(nntune.make_config(strategy="tpe", target="y")) is None
