"""The run's wall-clock budget: what it keeps free after the final model."""

from __future__ import annotations

import pytest

from nntune.execution import Budget


def test_the_time_kept_for_the_report_grows_with_the_trials_up_to_its_cap():
    budget = Budget(60.0, started=0.0, tail=3.0, tail_per_trial=0.02, tail_cap=6.0)
    assert budget.final_deadline() == pytest.approx(57.0)
    for _ in range(100):
        budget.count_trial()
    assert budget.kept_free() == pytest.approx(5.0)
    assert budget.final_deadline() == pytest.approx(55.0)
    assert budget.search_deadline() == pytest.approx(55.0 - budget.reserve)
    for _ in range(1000):
        budget.count_trial()
    assert budget.kept_free() == pytest.approx(6.0)  # never more than the cap


def test_without_a_report_nothing_is_kept_free():
    budget = Budget(60.0, started=0.0)
    for _ in range(50):
        budget.count_trial()
    assert budget.kept_free() == 0.0 and budget.final_deadline() == pytest.approx(60.0)


@pytest.mark.slow
def test_a_timed_run_with_a_report_ends_within_its_timeout(tmp_path):
    import time

    import numpy as np

    import nntune

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    started = time.monotonic()
    result = nntune.tune(X, y=y, timeout=12, threads=1, seed=0, out=tmp_path / "run", max_epochs=5)
    wall = time.monotonic() - started
    assert (tmp_path / "run" / "report.html").exists()
    assert wall <= 12.0 + 1.0, f"{wall:.2f} s for a 12 s timeout ({result.n_trials})"
    # An outcome, not only a clock: the tuned model beats the majority class on its test rows.
    assert result.test_scores["accuracy"] > 0.75
