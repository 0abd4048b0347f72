"""`nntune ablate`: techniques switched off one at a time, paired statistics, not-applicable ones,
both arms trained as the tuned trials were, and fits that break reported as harm."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import nntune
from nntune.execution import _ablate
from nntune.execution._ablate import TECHNIQUES, Ablated, count_failures_as_worst, paired_effect
from nntune.reports._ablation import summarize

# Augmentation and clipping in a recipe small enough to ablate in seconds, which still learns
# the table in its 5 epochs (so that a broken fit is visibly worse than a trained one).
RECIPE = {"augment": True, "aug_noise": 0.3, "clip_norm": 1.0, "n_layers": 1, "units": 16, "dropout": 0.0,
          "lr": 1e-2, "batch_size": 16}


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory):
    """One tuned run of RECIPE on a 200-row table, shared by the tests that ablate it."""
    root = tmp_path_factory.mktemp("ablation")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    label = np.where(X[:, 0] + X[:, 1] + rng.normal(0, 0.5, 200) > 0, "yes", "no")
    pd.DataFrame(X, columns=["a", "b", "c"]).assign(label=label).to_csv(root / "table.csv", index=False)
    # One validation split and a refit: the ablation runs its own folds (cv=2 below), not the run's.
    nntune.tune(root / "table.csv", target="label", trials=1, out=root / "run", report=False, max_epochs=5,
                patience=5, threads=1, space=RECIPE, cv="none", final="refit")
    return root / "run"


def test_paired_effect_is_the_mean_difference_with_a_t_interval():
    from scipy import stats

    effect, half, pairs = paired_effect([0.8, 0.9, 0.7], [0.7, 0.85, 0.6])
    assert effect == pytest.approx(-0.0833333) and pairs == 3
    diffs = [-0.1, -0.05, -0.1]
    sd = (sum((d - effect) ** 2 for d in diffs) / 2) ** 0.5
    assert half == pytest.approx(stats.t.ppf(0.975, 2) * sd / math.sqrt(3))
    # Only an undefined score drops its pair (a failed fit is scored before: see below).
    assert paired_effect([0.5, float("nan")], [0.4, 0.3])[2] == 1


def test_a_failed_fit_counts_as_the_worst_score_of_its_seed_and_fold():
    base = Ablated("none", True, "as tuned", scores=[0.8, 0.9], failures=[None, None])
    other = Ablated("dropout", True, "off", scores=[0.6, math.nan], failures=[None, "TrainingDiverged: nan"])
    broken = Ablated("l2", True, "off", scores=[math.nan, math.nan], failures=["TrainingDiverged: nan"] * 2)
    count_failures_as_worst([base, other, broken], floor=[0.5, 0.95], direction="maximize")
    # Below the no-skill score (0.5), or below every fit that trained when no-skill is higher.
    assert (other.scores, broken.scores) == ([0.6, 0.9], [0.5, 0.9])
    rows = {r["technique"]: r for r in summarize(base, [other, broken], "maximize")}
    assert rows["l2"]["verdict"] == "helps: without it training breaks in 2 of 2 fits"
    assert (rows["l2"]["pairs"], rows["l2"]["failed"], rows["l2"]["failures"]) == (2, 2, ["TrainingDiverged: nan"])
    assert rows["l2"]["score_effect"] == pytest.approx(-0.15)
    minimized = Ablated("l1", True, "off", scores=[math.nan], failures=["TrainingDiverged: inf"])
    count_failures_as_worst([Ablated("none", True, "", scores=[2.0], failures=[None]), minimized], [3.0], "minimize")
    assert minimized.scores == [3.0]  # for a loss-like metric the worst is the highest


def test_a_technique_whose_fits_break_with_it_hurts():
    base = Ablated("none", True, "as tuned", scores=[0.5, 0.9], failures=["TrainingDiverged: nan", None])
    other = Ablated("mixup", True, "off", scores=[0.8, 0.9], failures=[None, None])
    [row] = summarize(base, [other], "maximize")
    assert row["verdict"] == "hurts: with it training breaks in 1 of 2 fits (without it in 0)"


def test_techniques_apply_only_where_the_configuration_uses_them():
    params = {"dropout": 0.0, "norm": "batch", "weight_decay": 1e-4, "l1": 0.0, "l2": 0.0, "patience": 10,
              "max_epochs": 50, "schedule": "constant", "warmup_epochs": 0, "clip_norm": None,
              "clip_value": None, "residual": False, "label_smoothing": 0.0}
    applicable = {t.name for t in TECHNIQUES if t.applies(params)}
    assert applicable == {"batch_norm", "weight_decay", "early_stopping"}


def test_both_arms_train_as_the_tuned_trials_did(tuned_run, monkeypatch):
    """The tuned recipe's augmentation runs in the base arm and only there: before, neither arm
    applied it, and the augmentation's effect was zero by construction."""
    from nntune.training import _setup

    arm, batches = ["base"], {}
    real = _setup.make_augment

    def counting(*args, **kwargs):
        augment = real(*args, **kwargs)
        if augment is None:
            return None
        phase = arm[-1]  # the arm running when the augmentation was made

        def counted(x):
            batches[phase] = batches.get(phase, 0) + 1
            return augment(x)
        return counted

    monkeypatch.setattr(_setup, "make_augment", counting)
    numbers = nntune.ablate(tuned_run, tuned_run / "augmentation.html", techniques=["augmentation"], seeds=1,
                            cv=2, on_step=arm.append)
    assert batches.get("base", 0) > 0 and "augmentation" not in batches
    [row] = numbers["techniques"]
    assert row["applicable"] and row["changes"] == {"augment": False} and row["failed"] == 0


def test_a_variant_that_diverges_is_reported_as_harm_not_dropped(tuned_run, monkeypatch, open_report):
    real_fit = _ablate.fit

    def unstable_without_clipping(module, head, X, y, recipe, **kwargs):
        if recipe.get("clip_norm") is None and kwargs["seed"] == 1:
            X = np.full_like(X, np.nan)  # as if the unclipped gradients had blown up: the loss becomes NaN
        return real_fit(module, head, X, y, recipe, **kwargs)

    monkeypatch.setattr(_ablate, "fit", unstable_without_clipping)
    out = tuned_run / "diverged.html"
    nntune.ablate(tuned_run, out, techniques=["gradient_clipping"], seeds=2, cv=2)
    numbers = json.loads(out.with_suffix(".json").read_text())
    [row] = numbers["techniques"]
    assert row["pairs"] == 4  # every (seed, fold) pair kept: a failed one was dropped before
    assert (row["failed"], row["fits"]) == (2, 4)
    assert row["verdict"] == "helps: without it training breaks in 2 of 4 fits"
    assert row["failures"] == ["TrainingDiverged: training loss became nan in epoch 1"]
    # The broken fits count at the no-skill score: well below the trained base.
    assert numbers["base_score"] > 0.75 and row["score_effect"] < -0.1
    assert numbers["base_failed"] == 0 and "worst score" in numbers["failure_score"]
    text = out.read_text()
    assert "2 of 4 fits broke" in text and "without it training breaks in 2 of 4 fits" in text
    page = open_report(out)
    assert page["errors"] == [] and [f["key"] for f in page["figures"] if f["drawn"]] == ["effects"]


def test_a_programming_error_in_a_fit_surfaces(tuned_run, monkeypatch):
    def broken_fit(*args, **kwargs):
        raise KeyError("lr")  # a bug, not a recipe that cannot be trained

    monkeypatch.setattr(_ablate, "fit", broken_fit)
    with pytest.raises(KeyError, match="lr"):
        nntune.ablate(tuned_run, tuned_run / "bug.html", techniques=["gradient_clipping"], seeds=1, cv=2)


@pytest.mark.slow
def test_ablate_reports_each_technique_of_a_tuned_run(tmp_path, churn_csv, cli, open_report):
    # One trial on one validation split: the ablation (its own 2 seeds x 2 folds) is under test.
    nntune.tune(churn_csv, target="churned", trials=1, out=tmp_path / "run", report=False, max_epochs=10,
                threads=1, cv="none", final="refit",
                space={"dropout": 0.3, "norm": "batch", "schedule": "cosine", "weight_decay": 1e-3,
                       "n_layers": 1, "units": 32})
    code, out, err = cli("ablate", tmp_path / "run", "--seeds", "2", "--cv", "2",
                         "--techniques", "dropout,batch_norm,lr_schedule,gradient_clipping")
    assert code == 0, err
    numbers = json.loads((tmp_path / "run" / "ablation.json").read_text())
    rows = {r["technique"]: r for r in numbers["techniques"]}
    assert set(rows) == {"dropout", "batch_norm", "lr_schedule", "gradient_clipping"}
    assert rows["gradient_clipping"] == {"technique": "gradient_clipping", "applicable": False,
                                         "what": "not in this configuration"}  # not a zero effect
    for name in ("dropout", "batch_norm", "lr_schedule"):
        row = rows[name]
        assert row["applicable"] and row["pairs"] == 4  # 2 seeds x 2 folds
        assert row["score_effect"] == pytest.approx(row["score"] - numbers["base_score"], abs=1e-9)
        assert row["verdict"].split(":")[0] in ("helps", "hurts", "no clear effect")
    assert "not applicable" in out
    page = open_report(tmp_path / "run" / "ablation.html")
    assert [f["key"] for f in page["figures"] if f["traces"] and f["drawn"]] == ["effects"]
    assert page["errors"] == [] and len(page["requests"]) == 1


def test_ablate_refuses_an_unknown_technique(tmp_path, churn_csv, cli):
    nntune.tune(churn_csv, target="churned", trials=1, max_epochs=3, out=tmp_path / "run", report=False,
                threads=1, cv="none", final="refit")
    code, out, err = cli("ablate", tmp_path / "run", "--techniques", "droput")
    assert code == 2 and "did you mean 'dropout'" in err
