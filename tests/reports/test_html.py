"""The HTML report, rendered in headless Chromium: every figure drawn, offline, no errors."""

from __future__ import annotations

import io

import numpy as np
import pytest

import nntune

CLASSIFICATION_FIGURES = {"history", "importance", "parallel", "slice", "curves", "timeline", "training",
                          "confusion", "roc", "pr"}
REGRESSION_FIGURES = CLASSIFICATION_FIGURES - {"confusion", "roc", "pr"} | {"predicted", "residuals"}


def assert_rendered(page: dict, report, expected: set[str]) -> None:
    drawn = {f["key"] for f in page["figures"] if f["traces"] > 0 and f["drawn"]}
    assert drawn == expected, page["figures"]
    assert page["requests"] == [report.resolve().as_uri()], page["requests"]  # nothing fetched
    assert page["errors"] == []
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(page["screenshot"])).convert("L"), dtype=float)
    assert pixels.std() > 10  # text, tables and plots, not a blank page


@pytest.mark.slow
def test_classification_report_renders_every_figure_offline(tmp_path, churn_csv, open_report):
    result = nntune.tune(churn_csv, target="churned", trials=10, pruner="median", max_epochs=15,
                         out=tmp_path / "run", study="churn")
    report = tmp_path / "run" / "report.html"
    assert report.exists()  # written by tune itself
    text = report.read_text()
    assert f"{result.test_scores['accuracy']:.4f}" in text and "class balance" in text
    complete = result.n_trials["complete"]
    assert f"Top {min(10, complete)} trials" in text
    assert_rendered(open_report(report), report, CLASSIFICATION_FIGURES)


@pytest.mark.slow
def test_regression_report_with_baselines(tmp_path, open_report, cli):
    code, out, err = cli("tune", "--dataset", "diabetes", "--trials", "4", "--max-epochs", "20",
                         "--out", tmp_path / "run", "--no-report", "--quiet")
    assert code == 0 and not (tmp_path / "run" / "report.html").exists()
    code, out, err = cli("report", tmp_path / "run", "--baselines", "-o", tmp_path / "r.html")
    assert code == 0 and "report written" in out
    text = (tmp_path / "r.html").read_text()
    assert "What tuning bought" in text and "HistGradientBoosting" in text and "default network" in text
    assert_rendered(open_report(tmp_path / "r.html"), tmp_path / "r.html", REGRESSION_FIGURES)


def test_in_memory_runs_need_their_data_for_diagnostics(tmp_path, churn_frame):
    nntune.tune(churn_frame, target="churned", trials=2, max_epochs=5, out=tmp_path / "run", report=False)
    text = nntune.report(tmp_path / "run").read_text()
    assert "the run&#x27;s data is not available here" in text and "data-key='confusion'" not in text
    text = nntune.report(tmp_path / "run", data=churn_frame).read_text()
    assert "data-key='confusion'" in text


def test_report_of_a_missing_run_is_one_line(tmp_path, cli):
    code, out, err = cli("report", tmp_path / "nowhere")
    assert code == 2 and "is not an nntune run directory" in err
