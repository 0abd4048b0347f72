"""The shared trial loop and dead-worker detection, on in-memory studies."""

from __future__ import annotations

import threading
import time

import numpy as np
import optuna
import pytest

import nntune
from nntune.data import check_same_data, memory_sha256
from nntune.search import _study, fail_dead_trials, run_trials, worker_identity


def quick(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", 0, 1)


def test_an_orphan_running_trial_does_not_keep_the_loop_past_its_deadline():
    study = optuna.create_study()
    study.ask()  # a trial some process started and never finished, with no worker recorded
    finished = threading.Event()
    deadline = time.monotonic() + 1.0
    thread = threading.Thread(target=lambda: (run_trials(study, quick, 1, lambda: deadline), finished.set()),
                              daemon=True)
    thread.start()
    assert finished.wait(10), "the loop kept waiting for a trial nobody runs"


def test_unclaimed_trials_are_failed_and_queued_again_after_a_while(monkeypatch):
    study = optuna.create_study()
    orphan = study.ask()
    assert fail_dead_trials(study, retries=2) == []  # just started: it may still claim itself
    monkeypatch.setattr(_study, "UNCLAIMED_SECONDS", 0.2)
    time.sleep(0.3)
    assert fail_dead_trials(study, retries=2) == [orphan.number]
    states = [t.state.name for t in study.get_trials()]
    assert states == ["FAIL", "WAITING"]  # failed, and queued again


def test_a_retry_carrying_its_dead_predecessors_worker_is_not_failed_on_sight():
    study = optuna.create_study()
    retry = study.ask()
    dead = {**worker_identity(), "pid": 999_999_999, "trial": retry.number - 1}
    retry.set_user_attr("worker", dead)  # copied from the dead trial by Optuna's retry callback
    assert fail_dead_trials(study, retries=2) == []
    retry.set_user_attr("worker", {**dead, "trial": retry.number})  # now it is really that worker's
    assert fail_dead_trials(study, retries=2) == [retry.number]


def test_parallel_grid_stops_when_the_grid_is_exhausted():
    study = optuna.create_study(sampler=optuna.samplers.GridSampler({"x": [0.0, 0.5, 1.0]}))
    run_trials(study, quick, 10, lambda: None)
    assert sorted(t.params["x"] for t in study.trials) == [0.0, 0.5, 1.0]


def test_object_arrays_have_a_stable_checksum():
    first = np.array([["a", 1], ["b", 2]], dtype=object)
    second = np.array([["a", 1], ["b", 2]], dtype=object)  # equal values, other objects
    assert memory_sha256(first) == memory_sha256(second)
    assert memory_sha256(first) != memory_sha256(np.array([["a", 1], ["b", 3]], dtype=object))


def test_another_builtin_data_set_is_not_the_studys_data():
    with pytest.raises(nntune.DataError, match="started on the built-in data set 'iris'"):
        check_same_data({"kind": "dataset", "name": "iris"}, {"kind": "file", "path": "/x.csv", "sha256": "ab"})
