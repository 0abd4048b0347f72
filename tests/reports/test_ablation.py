"""`nntune ablate`: techniques switched off one at a time, paired statistics, not-applicable ones."""

from __future__ import annotations

import json
import math

import pytest

import nntune
from nntune.execution._ablate import TECHNIQUES, paired_effect


def test_paired_effect_is_the_mean_difference_with_a_t_interval():
    from scipy import stats

    effect, half, pairs = paired_effect([0.8, 0.9, 0.7], [0.7, 0.85, 0.6])
    assert effect == pytest.approx(-0.0833333) and pairs == 3
    diffs = [-0.1, -0.05, -0.1]
    sd = (sum((d - effect) ** 2 for d in diffs) / 2) ** 0.5
    assert half == pytest.approx(stats.t.ppf(0.975, 2) * sd / math.sqrt(3))
    assert paired_effect([0.5, float("nan")], [0.4, 0.3])[2] == 1  # a diverged fit drops its pair


def test_techniques_apply_only_where_the_configuration_uses_them():
    params = {"dropout": 0.0, "norm": "batch", "weight_decay": 1e-4, "l1": 0.0, "l2": 0.0, "patience": 10,
              "max_epochs": 50, "schedule": "constant", "warmup_epochs": 0, "clip_norm": None,
              "clip_value": None, "residual": False, "label_smoothing": 0.0}
    applicable = {t.name for t in TECHNIQUES if t.applies(params)}
    assert applicable == {"batch_norm", "weight_decay", "early_stopping"}


@pytest.mark.slow
def test_ablate_reports_each_technique_of_a_tuned_run(tmp_path, churn_csv, cli, open_report):
    nntune.tune(churn_csv, target="churned", trials=2, out=tmp_path / "run", report=False, max_epochs=30,
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
    nntune.tune(churn_csv, target="churned", trials=1, max_epochs=3, out=tmp_path / "run", report=False)
    code, out, err = cli("ablate", tmp_path / "run", "--techniques", "droput")
    assert code == 2 and "did you mean 'dropout'" in err
