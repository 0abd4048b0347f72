"""Fault tolerance: killed workers and killed drivers lose no trial and leave none twice."""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter

import optuna
import pytest

import nntune
from nntune.search import counts_toward_budget, get_storage

from .conftest import SMALL_NET, nntune_cli, small_net_config, trials_of, warm_forkserver

COMPLETE = optuna.trial.TrialState.COMPLETE


def died(trial: optuna.trial.FrozenTrial) -> bool:
    """Failed because its worker died: no reason recorded, unlike a trial that raised."""
    return trial.state.name == "FAIL" and "fail_reason" not in trial.user_attrs


def assert_every_trial_once(trials: list[optuna.trial.FrozenTrial], n_trials: int) -> None:
    """Exactly `n_trials` count; each dead trial was queued again once per death and the
    retries never ran one configuration to completion twice."""
    assert sum(counts_toward_budget(t) for t in trials) == n_trials
    assert len({t.number for t in trials}) == len(trials)
    origins = [t.system_attrs["failed_trial"] for t in trials
               if "failed_trial" in t.system_attrs and t.state == COMPLETE]
    assert len(origins) == len(set(origins)), origins
    for trial in trials:
        if died(trial):
            # its direct retries (a retry that died too is retried in turn, further down the chain)
            retries = [t for t in trials if t.system_attrs.get("retry_history", [])[-1:] == [trial.number]]
            assert len(retries) == 1 or len(trial.system_attrs.get("retry_history", [])) >= 2


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_failed_retried_and_the_study_still_completes(
        tmp_path, digits_csv, postgres_url, forked_workers):
    # The driver is this process (its worker process forked from a server done importing, see
    # conftest.forked_workers, so it searches from the start); a thread watches the storage and
    # kills the worker process inside one of its trials. The run must end normally.
    import threading

    victims = []

    def kill_a_worker_mid_trial() -> None:
        deadline = time.monotonic() + 120
        while not victims and time.monotonic() < deadline:
            time.sleep(0.1)
            try:
                trials = trials_of(postgres_url, "kill")
            except KeyError:  # the study is not created yet
                continue
            running = [t for t in trials if t.state.name == "RUNNING" and "worker" in t.user_attrs
                       and t.user_attrs["worker"]["pid"] != os.getpid() and t.number >= 2]  # a worker, not the driver
            if running:
                victims.append(running[0])
                os.kill(running[0].user_attrs["worker"]["pid"], signal.SIGKILL)

    killer = threading.Thread(target=kill_a_worker_mid_trial, daemon=True)
    killer.start()
    # Trials of about a second (SMALL_NET, 40 epochs): long enough to be caught running.
    result = nntune.tune(digits_csv, target="target", trials=6, storage=postgres_url, study="kill",
                         out=tmp_path / "run", workers=2, max_epochs=40, patience=40, threads=1, pruner="none",
                         cv="none", report=False, space=SMALL_NET)
    killer.join()
    assert victims, "no trial of the worker process was ever seen running"
    victim = victims[0]
    assert result.failed.get("workers") == 1, result.failed  # the killed process, reported

    trials = trials_of(postgres_url, "kill")
    states = Counter(t.state.name for t in trials)
    assert states["COMPLETE"] == 6, states
    killed = next(t for t in trials if t.number == victim.number)
    assert died(killed)
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retry) == 1 and retry[0].state == COMPLETE
    assert_every_trial_once(trials, 6)
    assert (tmp_path / "run" / "result.json").exists()


@pytest.mark.slow  # waits out three heartbeats between two runs
def test_a_silent_trial_of_another_machine_is_failed_by_heartbeat_and_retried(tmp_path, churn_csv, postgres_url):
    common = {"target": "churned", "storage": postgres_url, "study": "hb", "out": tmp_path / "run",
              "heartbeat": 1, "max_epochs": 5, "threads": 1, "cv": "none"}  # one split: the storage is under test
    nntune.tune(churn_csv, trials=1, report=False, **common)
    storage = get_storage(postgres_url, heartbeat=1, retries=2)
    study = optuna.load_study(study_name="hb", storage=storage)
    ghost = study.ask()  # a worker elsewhere took a trial, beat once, and fell silent
    ghost.set_user_attr("worker", {"host": "elsewhere", "machine": "elsewhere:boot:ns", "pid": 1, "started": 0.0,
                                   "trial": ghost.number})
    storage.record_heartbeat(ghost._trial_id)
    time.sleep(3.5)  # three heartbeats of 1 s

    result = nntune.tune(churn_csv, trials=2, resume=True, report=False, **common)
    trials = trials_of(postgres_url, "hb")
    ghost_after = next(t for t in trials if t.number == ghost.number)
    assert ghost_after.state.name == "FAIL" and died(ghost_after)
    assert [t.state.name for t in trials if t.system_attrs.get("failed_trial") == ghost.number] == ["COMPLETE"]
    assert_every_trial_once(trials, 2)
    assert result.n_trials["complete"] == 2


@pytest.mark.slow
def test_a_driver_killed_ten_times_resumes_without_losing_or_repeating_trials(tmp_path, churn_csv):
    # Four kills, one at each distinct place a run can be in, prove what ten random ones did
    # (which mostly hit the same places again): inside a trial (twice: the second one resumes a
    # study with a dead trial already retried), between two trials (right after one completes,
    # while the next is asked for) and after the last trial (the final model and its saving). The
    # drivers are forked from a server done importing (conftest.nntune_cli): a kill costs no
    # start-up. The test keeps its name: what it claims is that kills of a driver lose nothing.
    warm_forkserver()
    args = ("tune", small_net_config(tmp_path), "--data", churn_csv, "--target", "churned", "--trials", "6",
            "--resume", "--study", "again", "--out", tmp_path / "run", "--max-epochs", "40", "--patience", "40",
            "--threads", "1", "--cv", "none", "--quiet")  # one split: trials of about a second
    db = tmp_path / "run" / "study.db"
    storage = f"sqlite:///{db}"
    rng = random.Random(0)
    complete_counts = []
    for place in ("trial", "between", "trial", "final"):
        driver = nntune_cli(*args)
        while not db.exists() and driver.poll() is None:
            time.sleep(0.05)
        complete = sum(t.state == COMPLETE for t in _trials(storage))
        if place == "trial":  # inside a trial, when the run still has one to run
            while driver.poll() is None and not any(t.state.name == "RUNNING" for t in _trials(storage)):
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.1))
        elif place == "between":  # as a trial completes
            while driver.poll() is None and sum(t.state == COMPLETE for t in _trials(storage)) <= complete:
                time.sleep(0.02)
        else:  # the trials are all done: the final model trains, or is being saved
            while driver.poll() is None and sum(counts_toward_budget(t) for t in _trials(storage)) < 6:
                time.sleep(0.02)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        complete_counts.append(sum(t.state == COMPLETE for t in trials_of(storage, "again")))
    assert complete_counts == sorted(complete_counts), complete_counts  # only ever grows

    final = nntune_cli(*args)
    assert final.wait(timeout=300) == 0, final.stderr.read()
    trials = trials_of(storage, "again")
    assert_every_trial_once(trials, 6)
    assert not [t for t in trials if t.state.name == "RUNNING"]
    assert sum(died(t) for t in trials) >= 1, "no kill landed inside a trial"
    assert (tmp_path / "run" / "result.json").exists()


def _trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return trials_of(storage, "again")
    except KeyError:  # created, not yet named
        return []
