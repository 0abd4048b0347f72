"""The HTML report, rendered in headless Chromium: every figure drawn, offline, no errors."""

from __future__ import annotations

import io

import numpy as np
import pytest

import nntune
from tests.conftest import make_churn_frame

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


@pytest.fixture(scope="module")
def churn_run(tmp_path_factory):
    """One cross-validated classification run (its report written by tune), read by the report,
    PNG and dashboard tests; none of them writes into it. Two folds, not cv auto's five: the
    report shows a cross-validated run either way."""
    root = tmp_path_factory.mktemp("churn")
    make_churn_frame().to_csv(root / "churn.csv", index=False)
    # Random sampling: the report is under test, not the sampler (auto's Gaussian process costs
    # seconds per trial here). Still 8 trials, some pruned: every figure has trials to show.
    result = nntune.tune(root / "churn.csv", target="churned", trials=8, pruner="median", max_epochs=10,
                         cv=2, out=root / "run", study="churn", strategy="random", threads=1)
    return result


@pytest.mark.slow
def test_classification_report_renders_every_figure_offline(churn_run, open_report):
    result = churn_run
    report = result.run_dir / "report.html"
    assert report.exists()  # written by tune itself
    text = report.read_text()
    assert f"{result.test_scores['accuracy']:.4f}" in text and "class balance" in text
    complete = result.n_trials["complete"]
    assert f"Top {min(10, complete)} trials" in text
    assert_rendered(open_report(report), report, CLASSIFICATION_FIGURES)


@pytest.mark.slow
def test_regression_report_with_baselines(tmp_path, open_report, cli):
    # (one validation split: the classification run above is the cross-validated one)
    code, out, err = cli("tune", "--dataset", "diabetes", "--trials", "4", "--max-epochs", "10", "--cv", "none",
                         "--strategy", "random", "--threads", "1", "--out", tmp_path / "run", "--no-report",
                         "--quiet")
    assert code == 0 and not (tmp_path / "run" / "report.html").exists()
    code, out, err = cli("report", tmp_path / "run", "--baselines", "-o", tmp_path / "r.html")
    assert code == 0 and "report written" in out
    text = (tmp_path / "r.html").read_text()
    assert "What tuning bought" in text and "HistGradientBoosting" in text and "default network" in text
    assert_rendered(open_report(tmp_path / "r.html"), tmp_path / "r.html", REGRESSION_FIGURES)


def test_in_memory_runs_need_their_data_for_diagnostics(tmp_path, churn_frame):
    nntune.tune(churn_frame, target="churned", trials=2, max_epochs=5, cv="none", out=tmp_path / "run", report=False)
    text = nntune.report(tmp_path / "run").read_text()
    assert "the run&#x27;s data or model is not available here" in text and "data-key='confusion'" not in text
    text = nntune.report(tmp_path / "run", data=churn_frame).read_text()
    assert "data-key='confusion'" in text


def test_report_of_a_missing_run_is_one_line(tmp_path, cli):
    code, out, err = cli("report", tmp_path / "nowhere")
    assert code == 2 and "is not an nntune run directory" in err


@pytest.mark.slow
def test_dashboard_serves_the_runs_study(churn_run):
    import json
    import socket
    import time
    import urllib.request

    from tests._fresh import start_script

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = "import sys; from nntune.cli import main; sys.argv[0] = 'nntune'; main()"
    # `nntune dashboard` in a new process (its libraries imported ahead: see tests/_fresh.py).
    server = start_script(code, "dashboard", churn_run.run_dir, "--port", port)
    try:
        studies = None
        deadline = time.monotonic() + 120  # a loaded machine starts it slowly
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as response:
                    studies = json.loads(response.read())
                break
            except OSError:
                time.sleep(0.25)
        assert studies is not None, server.stderr if server.poll() is not None else "no answer"
        assert [s["study_name"] for s in studies["study_summaries"]] == ["churn"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_dashboard_without_its_extra_says_how_to_install(tmp_path, monkeypatch, cli):
    import sys

    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)
    code, out, err = cli("dashboard", tmp_path)
    assert code == 2 and "pip install 'nntune[dashboard]'" in err


@pytest.mark.slow
def test_figures_also_as_png(tmp_path, churn_run, chromium, cli):
    from PIL import Image

    code, out, err = cli("report", churn_run.run_dir, "--png", tmp_path / "png", "-o", tmp_path / "r.html")
    assert code == 0, err
    written = {p.stem: p for p in (tmp_path / "png").glob("*.png")}
    page = (tmp_path / "r.html").read_text()
    drawn = {key for key in CLASSIFICATION_FIGURES if f"class='figure' data-key='{key}'" in page}
    assert set(written) == drawn and "history" in drawn
    image = Image.open(written["history"])
    assert image.size == (2000, 900)  # 1000 x 450 at scale 2
    assert np.asarray(image.convert("L"), dtype=float).std() > 10


@pytest.mark.slow
def test_multi_objective_run_respects_its_constraint_and_reports_its_front(tmp_path, open_report):
    result = nntune.tune(dataset="breast_cancer", trials=10, max_epochs=5, objectives="accuracy,params,latency",
                         constraints=["params<=5000"], out=tmp_path / "run", study="mo", strategy="nsga2", cv="none",
                         threads=1)
    assert result.objectives == ["accuracy", "params", "latency"]
    model = nntune.load(result.model_dir)  # the saved model, as shipped
    assert sum(p.numel() for p in model.module.parameters()) <= 5000  # the picked model honours the constraint
    front = result.pareto_front
    assert front and all(t["values"]["params"] <= 5000 for t in front)
    for a in front:  # nobody on the front is beaten on every objective by another
        for b in front:
            values_a, values_b = a["values"], b["values"]
            better = (values_b["accuracy"] >= values_a["accuracy"] and values_b["params"] <= values_a["params"]
                      and values_b["latency"] <= values_a["latency"])
            assert not (better and b["values"] != a["values"])
    report = tmp_path / "run" / "report.html"
    page = open_report(report)
    drawn = {f["key"] for f in page["figures"] if f["traces"] and f["drawn"]}
    assert {"history", "pareto", "timeline", "training", "confusion", "roc"} <= drawn
    assert page["errors"] == [] and page["requests"] == [report.resolve().as_uri()]
    assert f"Pareto front ({len(front)} trials)" in report.read_text()


def test_a_table_with_date_columns_gets_its_report(tmp_path):
    # The report scores the saved model on the run's own (conformed) rows, where each date column
    # is already its numeric parts: that once failed with "the data lacks column(s) pickup, dropoff".
    from tests.conftest import TEST_DATA

    result = nntune.tune(TEST_DATA / "taxis.csv", target="payment", trials=1, max_epochs=3, cv="none",
                         out=tmp_path / "run", threads=1)
    page = (result.run_dir / "report.html").read_text()
    assert "confusion" in page  # the diagnostics of the model on the test rows are there
