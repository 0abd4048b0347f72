"""End-to-end runs of nntune.tune on real data, asserting the outcomes users rely on."""

from __future__ import annotations

import json
import time

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import RidgeCV
from torch import nn

import nntune
from nntune.data import encode_split, load_tabular, split_train_test

from ._fresh import run_script
from ._references import assert_run_learned, at_least_linear

pytestmark = pytest.mark.slow

# Seed 2 gives splits on which a linear model scores near its median over seeds (Ridge R^2
# 0.44 on diabetes; seeds range 0.33-0.53), so the thresholds test the tuner, not the split.
SEED = 2


def test_breast_cancer_defaults_match_a_linear_model(tmp_path):
    # The defaults as a user gets them (cv auto: five folds here; the fold models delivered),
    # with fewer trials and epochs than a user would give them, so that the suite stays fast.
    result = nntune.tune(dataset="breast_cancer", trials=4, max_epochs=30, strategy="tpe", seed=SEED,
                         out=tmp_path / "run")
    assert result.n_trials == {"complete": 4}
    assert_run_learned(result.test_scores["accuracy"], tmp_path / "run", margin=0.03)
    assert result.test_scores["roc_auc"] >= 0.98
    saved = json.loads((tmp_path / "run" / "result.json").read_text())
    assert saved["test_scores"] == result.test_scores and saved["study"] == "breast_cancer"


def test_diabetes_reaches_040_r2_and_matches_a_linear_baseline(tmp_path):
    result = nntune.tune(dataset="diabetes", trials=6, max_epochs=40, cv=3, seed=SEED, report=False,
                         out=tmp_path / "run")
    assert result.test_scores["r2"] >= 0.40
    table = load_tabular(dataset="diabetes")
    encoded = encode_split(table, *split_train_test(table, 0.2, SEED))
    ridge = RidgeCV().fit(encoded.X_train, encoded.y_train).score(encoded.X_eval, encoded.y_eval)
    assert result.test_scores["r2"] >= ridge - 0.05


def test_resume_runs_exactly_the_missing_trials(tmp_path):
    common = dict(dataset="iris", study="iris", out=tmp_path / "run", report=False, max_epochs=5, seed=0, pruner="none",
                  cv="none")
    first = nntune.tune(trials=4, **common)
    assert first.n_trials == {"complete": 4}
    first_values = [t.value for t in first.study.trials]
    with pytest.raises(nntune.StudyExistsError, match="already exists.*--resume"):
        nntune.tune(trials=6, **common)
    second = nntune.tune(trials=6, resume=True, **common)
    assert second.n_trials == {"complete": 6}
    numbers = [t.number for t in second.study.trials]
    assert numbers == list(range(6))
    # Values of the first four trials were kept, not recomputed.
    assert [t.value for t in second.study.trials[:4]] == first_values


def test_resume_starts_a_missing_study(tmp_path):
    result = nntune.tune(dataset="iris", study="fresh", resume=True, trials=2, max_epochs=5, cv="none",
                         report=False, out=tmp_path / "run")
    assert result.n_trials == {"complete": 2}


def test_saved_model_predicts_identically_in_a_fresh_process(tmp_path, churn_frame):
    # The default delivery on a small table (cv auto: an ensemble of fold models) must reload exactly.
    result = nntune.tune(churn_frame, target="churned", trials=2, max_epochs=5,
                         report=False, out=tmp_path / "run")
    rows = churn_frame.drop(columns="churned")
    rows.to_csv(tmp_path / "new.csv", index=False)
    expected = result.model.predict_proba(rows)
    script = (
        "import sys, numpy as np, pandas as pd, nntune\n"
        "m = nntune.load(sys.argv[1])\n"
        "np.save(sys.argv[3], m.predict_proba(pd.read_csv(sys.argv[2])))\n"
    )
    done = run_script(script, result.model_dir, tmp_path / "new.csv", tmp_path / "p.npy")
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.load(tmp_path / "p.npy"), expected)
    labels = nntune.load(result.model_dir).predict(rows)
    assert set(labels) <= {"yes", "no"}
    assert (labels == result.model.predict(rows)).all()


def test_a_failing_trial_never_kills_the_study(tmp_path):
    space = {"optimizer": "sgd", "lr": {"type": "categorical", "choices": [1e30, 1e-2]},
             "momentum": 0.9}
    result = nntune.tune(dataset="iris", trials=8, strategy="random", space=space, seed=1,
                         max_epochs=5, cv="none", report=False, out=tmp_path / "run")
    failed = [t for t in result.study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed and result.n_trials.get("complete", 0) + len(failed) == 8
    assert all("became nan" in t.user_attrs["fail_reason"] or "inf" in t.user_attrs["fail_reason"]
               for t in failed)
    assert result.best_params["lr"] == 1e-2


def test_timeout_bounds_the_whole_run(tmp_path):
    started = time.monotonic()
    result = nntune.tune(dataset="digits", timeout="12s", cv=3, report=False, out=tmp_path / "run")
    elapsed = time.monotonic() - started
    assert elapsed < 12 * 1.25
    assert result.n_trials.get("complete", 0) >= 1
    assert_run_learned(result.test_scores["accuracy"], tmp_path / "run", margin=0.08)


def test_trials_record_curves_and_attributes_optuna_tools_read(tmp_path):
    result = nntune.tune(dataset="wine", trials=3, cv=3, max_epochs=12, report=False, out=tmp_path / "run")
    trial = result.study.best_trial
    attrs = trial.user_attrs
    assert len(attrs["fold_scores"]) == 3
    assert trial.value == pytest.approx(np.mean(attrs["fold_scores"]))
    # every fold reports its curve (fold i at steps i*stride+epoch); `curves` keeps the first fold's
    assert len(attrs["curves"]["val_score"]) == len([s for s in trial.intermediate_values if s < attrs["fold_stride"]])
    assert sum(attrs["epochs_run"]) == len(trial.intermediate_values)
    assert attrs["n_params"] > 0 and attrs["train_seconds"] > 0
    # the study reloads from its file with plain Optuna, as optuna-dashboard would read it
    study = optuna.load_study(study_name="wine", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    assert len(study.trials) == 3 and study.user_attrs["data"]["task"] == "multiclass"
    from optuna.visualization import plot_intermediate_values, plot_optimization_history
    assert plot_optimization_history(study).data and plot_intermediate_values(study).data


def test_pruner_prunes_with_hyperband(tmp_path):
    result = nntune.tune(dataset="digits", trials=10, pruner="hyperband", strategy="random",
                         max_epochs=9, cv="none", report=False, out=tmp_path / "run", seed=0)
    assert result.n_trials.get("pruned", 0) >= 1
    assert_run_learned(result.test_scores["accuracy"], tmp_path / "run", margin=0.05)


def build_net(hp):
    width = hp.int("width", 8, 64, log=True)
    act = hp.choice("act", ["relu", "tanh"])
    return nn.Sequential(nn.Linear(hp.input_dim, width),
                         nn.ReLU() if act == "relu" else nn.Tanh(),
                         nn.Linear(width, hp.output_dim))


def test_build_model_escape_hatch(tmp_path):
    result = nntune.tune(dataset="breast_cancer", build_model=build_net, trials=4, seed=SEED, max_epochs=30,
                         cv="none", report=False, out=tmp_path / "run")
    assert {"width", "act", "lr", "optimizer"} <= set(result.best_params)
    table = load_tabular(dataset="breast_cancer")  # a custom network: the run's split, rebuilt here
    split = encode_split(table, *split_train_test(table, 0.2, SEED))
    at_least_linear(result.test_scores["accuracy"], split.X_train, split.y_train, split.X_eval, split.y_eval)
    X = load_breast_cancer(as_frame=True).data
    with pytest.raises(nntune.ModelDirError, match="pass it as load\\(path, build_model=fn\\)"):
        nntune.load(result.model_dir)
    reloaded = nntune.load(result.model_dir, build_model=build_net)
    assert np.array_equal(reloaded.predict_proba(X), result.model.predict_proba(X))


def test_arrays_and_dataframes_in(tmp_path):
    data = load_diabetes()
    result = nntune.tune(data.data, y=data.target, trials=2, max_epochs=5, cv="none", report=False, out=tmp_path / "a")
    assert result.model.task == "regression" and result.model.predict(data.data[:5]).shape == (5,)
    frame = pd.DataFrame(data.data, columns=data.feature_names).assign(target=data.target)
    result = nntune.tune(frame, target="target", trials=2, max_epochs=5, cv="none", report=False, out=tmp_path / "b")
    assert set(result.test_scores) == {"r2", "rmse", "mae"}
