"""The delivered model: the selected recipe's fold models averaged, or a refit with the trial's
exact recipe; k-fold CV by default on small tables."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import nntune
from nntune.data import encode_split, load_tabular, split_train_test
from nntune.execution import _final
from nntune.models import Ensemble
from nntune.training import TrainingDiverged

from .._fresh import run_script, warm
from .._references import assert_run_learned

TINY = {"trials": 2, "max_epochs": 8, "pruner": "none", "report": False, "threads": 1}


@pytest.fixture(scope="module")
def folds_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("final") / "run"
    warm()  # the reload test's fresh process imports its libraries while this trains
    return nntune.tune(dataset="breast_cancer", out=out, **{**TINY, "max_epochs": 15})


def test_small_tables_get_five_folds_and_the_fold_models_are_delivered(folds_run):
    assert folds_run.study.user_attrs["config"]["search"]["cv"] == 5
    info = folds_run.model.info
    configs = len(info["ensemble"]["configs"])  # trials greedy selection kept, five fold models each
    assert info["final"] == "folds" and info["ensemble"]["members"] == 5 * configs
    assert isinstance(folds_run.model.module, Ensemble)
    assert all(m["epochs"] >= 1 for m in info["ensemble"]["folds"])
    # A result, not only a run: at least as good as a linear model on the same split, less a margin.
    table = load_tabular(dataset="breast_cancer")
    split = encode_split(table, *split_train_test(table, 0.2, 0))
    linear = LogisticRegression(max_iter=2000).fit(split.X_train, split.y_train).score(split.X_eval, split.y_eval)
    majority = np.bincount(split.y_eval).max() / len(split.y_eval)
    assert folds_run.test_scores["accuracy"] >= max(linear - 0.04, majority + 0.2)


@pytest.mark.slow  # a fresh Python process (seconds of imports)
def test_the_ensemble_reloads_in_a_fresh_process_and_predicts_the_same(folds_run, tmp_path):
    from sklearn.datasets import load_breast_cancer

    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(40)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    here = folds_run.model.predict_proba(rows)
    script = ("import sys, json, nntune, pandas as pd; m = nntune.load(sys.argv[1]); "
              "print(json.dumps(m.predict_proba(pd.read_csv(sys.argv[2])).tolist()))")
    done = run_script(script, folds_run.model_dir, tmp_path / "rows.csv")
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.asarray(json.loads(done.stdout)), here, rtol=0, atol=1e-6)
    # The averaged probabilities are the members' mean.
    import torch

    X = torch.from_numpy(nntune.data.transform(folds_run.model.preprocessor, rows))
    with torch.no_grad():
        members = [torch.softmax(m(X), 1) if m(X).shape[1] > 1 else torch.sigmoid(m(X)).reshape(-1)
                   for m in folds_run.model.module.members]
    weights = torch.tensor(folds_run.model.module.weights).reshape(-1, *[1] * members[0].dim())
    mean = (torch.stack(members) * weights).sum(0).numpy()
    mean = mean if mean.ndim == 2 else np.stack([1 - mean, mean], 1)
    np.testing.assert_allclose(here, mean, atol=1e-5)


def test_the_ensemble_exports_to_onnx(folds_run, tmp_path):
    import shutil

    mine = tmp_path / "run"
    shutil.copytree(folds_run.run_dir, mine)
    info = nntune.export(mine, "onnx")  # checked against onnxruntime on the test rows inside
    assert info["checked_rows"] > 0


def test_refit_trains_the_trials_recipe_stopped_at_its_epoch(tmp_path, monkeypatch):
    calls = []
    real = _final.fit

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(_final, "fit", spy)
    result = nntune.tune(dataset="iris", out=tmp_path / "run", final="refit", **TINY)
    (refit,) = calls
    chosen = result.best_trial.user_attrs["epochs"]
    assert refit["epochs"] == max(1, round(chosen))  # not scaled up for the larger training set
    assert refit["horizon"] == 8  # the schedule spans max_epochs, as in the trial
    assert result.model.info["final"] == "refit" and "ensemble" not in result.model.info


def test_refits_with_their_own_seeds_are_averaged_and_reload_as_one_model(tmp_path):
    # ensemble 3 (the default) with the refit final auto chooses for one validation split: the
    # recipe retrained with seeds 0, 1, 2, their probabilities averaged; saved, it reloads in a
    # fresh process. (--final refit asks for one network: see the test above.)
    result = nntune.tune(dataset="breast_cancer", out=tmp_path / "run", cv="none", **{**TINY, "max_epochs": 15})
    info = result.model.info
    assert info["final"] == "refit" and info["ensemble"]["members"] == 3
    assert [m["seed"] for m in info["ensemble"]["folds"]] == [0, 1, 2]
    assert all(m["epochs_run"] == m["epochs"] for m in info["ensemble"]["folds"])
    assert isinstance(result.model.module, Ensemble)
    assert_run_learned(result.test_scores["accuracy"], tmp_path / "run")
    alone = result.ensemble["test"]["best_trial"]["accuracy"]  # the first refit alone, beside it
    assert result.test_scores["accuracy"] >= alone - 0.03
    from sklearn.datasets import load_breast_cancer

    rows = load_breast_cancer(as_frame=True).frame.drop(columns="target").head(40)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    script = ("import sys, json, nntune, pandas as pd; m = nntune.load(sys.argv[1]); "
              "print(json.dumps(m.predict_proba(pd.read_csv(sys.argv[2])).tolist()))")
    done = run_script(script, result.model_dir, tmp_path / "rows.csv")
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.asarray(json.loads(done.stdout)), result.model.predict_proba(rows), atol=1e-6)


def test_a_diverging_refit_falls_back_to_the_fold_models(tmp_path, monkeypatch):
    def diverge(*args, **kwargs):
        raise TrainingDiverged("training loss became nan in epoch 3")

    monkeypatch.setattr(_final, "train_final", diverge)
    result = nntune.tune(dataset="iris", out=tmp_path / "run", final="refit", **TINY)
    assert result.model.info["final"] == "folds"
    assert any("diverged" in w for w in result.warnings)


def test_larger_tables_keep_one_validation_split(tmp_path):
    rng = np.random.default_rng(0)
    import pandas as pd

    frame = pd.DataFrame(rng.normal(size=(3000, 3)), columns=["a", "b", "c"])
    frame["y"] = (frame.a + rng.normal(0, 0.5, 3000) > 0).astype(int)
    result = nntune.tune(frame, target="y", out=tmp_path / "run", **{**TINY, "trials": 1, "max_epochs": 2})
    assert result.study.user_attrs["config"]["search"]["cv"] is None
    assert result.model.info["final"] == "refit"
    explicit = nntune.tune(dataset="iris", out=tmp_path / "one", cv="none", **{**TINY, "trials": 1})
    assert explicit.best_std is None and explicit.model.info["final"] == "refit"


def test_greedy_selection_mixes_what_helps_and_leaves_out_what_does_not():
    from nntune.training import get_metric

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    truth = np.stack([1 - y, y], 1).astype(float)
    # Two candidates right on different halves of the rows (a mix beats either), one coin flip.
    left, right = truth.copy(), truth.copy()
    left[200:] = 0.6 * (1 - truth[200:]) + 0.4 * truth[200:]
    right[:200] = 0.6 * (1 - truth[:200]) + 0.4 * truth[:200]
    coin = rng.dirichlet([1, 1], 400)
    metric, smooth = get_metric("accuracy", "binary"), get_metric("log_loss", "binary")
    counts = _final.select_ensemble([left, right, coin], y, metric, smooth)
    assert counts[0] and counts[1] and not counts[2]
    assert _final.select_ensemble([left], y, metric, smooth) == [1]


def test_the_summary_shows_the_ensemble_beside_the_best_trial(folds_run):
    summary = folds_run.ensemble
    complete = {t.number for t in folds_run.study.trials if t.state.name == "COMPLETE"}
    assert summary["trials"] and set(summary["trials"]) <= complete
    assert set(summary["validation"]) == {"best_trial", "ensemble"}
    assert summary["test"]["ensemble"] == folds_run.test_scores


def test_the_fold_models_delivered_are_the_trials_own_not_trained_again(tmp_path, monkeypatch):
    calls = []
    real = _final.fit
    monkeypatch.setattr(_final, "fit", lambda *a, **k: calls.append(k) or real(*a, **k))
    result = nntune.tune(dataset="iris", out=tmp_path / "run", **TINY)
    assert result.model.info["final"] == "folds" and not calls  # every member came from its trial
    # The out-of-fold score ensemble selection saw is the trial's own cross-validated score.
    best = result.ensemble["validation"]["best_trial"]
    assert best == pytest.approx(result.best_value, abs=0.02)
    table = load_tabular(dataset="iris")
    majority = np.bincount(table.y).max() / len(table.y)
    assert result.test_scores["accuracy"] >= majority + 0.3


def test_a_regression_ensemble_puts_every_fold_model_on_one_target_scale(tmp_path):
    from sklearn.linear_model import Ridge

    result = nntune.tune(dataset="diabetes", out=tmp_path / "run", **TINY)
    module = result.model.module
    assert isinstance(module, Ensemble) and module.rescaled  # each fold standardised its own targets
    # Saved and loaded, the ensemble predicts what the run's model predicted.
    rows = load_tabular(dataset="diabetes").features.head(30)
    np.testing.assert_allclose(nntune.load(result.model_dir).predict(rows), result.model.predict(rows), atol=1e-6)
    table = load_tabular(dataset="diabetes")
    split = encode_split(table, *split_train_test(table, 0.2, 0))
    linear = Ridge().fit(split.X_train, split.y_train).score(split.X_eval, split.y_eval)
    assert result.test_scores["r2"] >= linear - 0.15  # two tiny trials, near a linear model


def test_a_refit_the_time_limit_cut_short_gives_way_to_the_validated_model(tmp_path, monkeypatch):
    real = _final.fit

    def cut_short(*args, **kwargs):  # as if the deadline came after the first epoch
        return real(*args, **{**kwargs, "epochs": 1})

    monkeypatch.setattr(_final, "fit", cut_short)
    result = nntune.tune(dataset="iris", out=tmp_path / "run", cv="none", final="refit", **TINY)
    assert result.model.info["final"] == "folds"  # the trial's own early-stopped network
    assert any("cut the refit" in w for w in result.warnings)
    assert result.test_scores["accuracy"] >= 0.33 + 0.3  # the majority class, 0.33, is where one epoch ends


@pytest.mark.parametrize("share", [0.0, 1e9])
def test_auto_refits_one_split_only_where_the_refit_is_cheap(tmp_path, monkeypatch, share):
    # share 0: every refit counts as dear (as one of beijing_pm25's 41,757 rows at 60 s does);
    # 1e9: none does.
    refits = []
    real = _final.fit
    monkeypatch.setattr(_final, "fit", lambda *a, **k: refits.append(k) or real(*a, **k))
    monkeypatch.setattr(_final, "REFIT_MAX_SHARE", share)
    result = nntune.tune(dataset="iris", out=tmp_path / "run", cv="none", timeout=300, **TINY)
    dear = share == 0.0
    assert result.model.info["final"] == ("folds" if dear else "refit")
    assert bool(refits) is not dear  # the validated model is the trial's own, not trained again
    assert any("would take more than a quarter" in w for w in result.warnings) is dear
    assert result.test_scores["accuracy"] >= 0.33 + 0.3


def test_kept_trials_hold_the_best_few_within_the_memory_bound():
    from torch import nn

    from nntune.search import KeptTrials

    kept = KeptTrials(2, "maximize", [np.array([0, 1]), np.array([2, 3])], 4, preprocessor=None,
                      max_parameters=100)
    def offer(number, value, width=2):
        kept.offer(number, value, 0.0, {}, [nn.Linear(width, 1)] * 2, [None] * 2,
                   [np.array([0.1, 0.2]), np.array([0.3, 0.4])], [])

    offer(0, 0.5)
    offer(1, 0.9)
    offer(2, 0.7)
    assert 1 in kept and 2 in kept and 0 not in kept  # the best two
    np.testing.assert_allclose(kept.get(1).out_of_fold, [0.1, 0.2, 0.3, 0.4])
    offer(3, 0.99, width=100)  # better, but more parameters than the bound allows
    assert 3 not in kept and 1 in kept


def test_the_final_time_reserves_only_whole_refits():
    # One refit of the best trial takes 10 s; two more seeds are asked for. A minute's budget
    # shares a fifth (12 s) among the seeds after the first: that holds one whole refit (11 s
    # with its margin), not the 22 s of two, and a part of one would never be trained.
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    best = create_trial(value=0.9, params={"lr": 1e-3}, distributions={"lr": FloatDistribution(1e-4, 1e-1, log=True)},
                        user_attrs={"train_seconds": 10.0, "epochs_run": [10], "epochs": 10})
    one = 10.0 + 0.5
    assert _final.final_seconds(best, 800, 800, "refit", timeout=60.0, seeds=3) == pytest.approx(one + 11.0)
    assert _final.final_seconds(best, 800, 800, "refit", timeout=200.0, seeds=3) == pytest.approx(one + 22.0)
    assert _final.final_seconds(best, 800, 800, "refit", timeout=None, seeds=3) == pytest.approx(one + 22.0)
    assert _final.final_seconds(best, 800, 800, "refit", timeout=30.0, seeds=3) == pytest.approx(one)
