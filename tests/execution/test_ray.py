"""The Ray backend on a real Ray cluster, started on loopback by the test."""

from __future__ import annotations

import os

import pytest

import nntune
from nntune.search import counts_toward_budget

from .conftest import trials_of
from .test_training_extras import assert_learned


@pytest.fixture
def ray_cluster():
    """A local Ray cluster with 2 CPUs on 127.0.0.1, stopped afterwards."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_trials_run_as_ray_tasks_on_a_cluster(tmp_path, churn_csv, ray_cluster):
    # One validation split (cv auto would train five folds per trial and five final models):
    # the Ray backend is under test, not how a trial is scored.
    # Trials long enough (30 epochs, 8 of them) that the second task, started a few seconds later
    # on a loaded machine, still finds some left: with 8 epochs the first could take them all.
    result = nntune.tune(churn_csv, target="churned", trials=8, backend="ray", cpus_per_trial=1,
                         out=tmp_path / "run", study="ray", max_epochs=30, report=False, cv="none")
    trials = trials_of(result.storage, "ray")
    assert sum(counts_toward_budget(t) for t in trials) == 8
    pids = {t.user_attrs["worker"]["pid"] for t in trials}
    assert len(pids) == 2 and os.getpid() not in pids  # two tasks of 1 CPU each on 2 CPUs
    assert_learned(result.test_scores["accuracy"], result.run_dir)  # vs. logistic regression on its split
    assert ray_cluster.is_initialized()  # a cluster nntune did not start, it leaves running
    reloaded = nntune.load(result.model_dir)
    assert reloaded.predict(nntune.api.read_table(churn_csv)).shape == (300,)


@pytest.mark.slow
def test_without_an_address_a_local_ray_instance_is_started_and_stopped(tmp_path, churn_csv):
    import ray

    # One trial: one Ray worker to start, which is what this test waits for.
    result = nntune.tune(churn_csv, target="churned", trials=1, backend="ray", out=tmp_path / "run",
                         study="local", max_epochs=5, report=False, cv="none")
    assert result.n_trials["complete"] == 1
    assert not ray.is_initialized()


def test_slots_count_what_each_node_holds():
    from nntune.execution._ray import _slots

    assert _slots([{"CPU": 8.0}], 2, 0) == 4
    assert _slots([{"CPU": 8.0, "GPU": 1.0}], 1, 0.5) == 2
    assert _slots([{"CPU": 3.0}, {"CPU": 3.0}], 2, 0) == 2
    with pytest.raises(nntune.ConfigError, match="no node of the Ray cluster fits a trial of cpus_per_trial=4"):
        _slots([{"CPU": 2.0}, {"CPU": 2.0}], 4, 0)  # 4 CPUs in all, but not on one node
    with pytest.raises(nntune.ConfigError, match="gpus_per_trial=1.*0 GPUs"):
        _slots([{"CPU": 2.0}], 1, 1)
