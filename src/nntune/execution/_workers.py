"""Workers: processes that run trials of a study they find in a shared storage.

A study carries everything a worker needs (its config, a reference to its data with a
checksum, the trial budget and the run's deadline), so a worker is started with a storage URL
and a study name only: in a local process (`--workers N`), as a Ray task (`--backend ray`), or
on any machine that reaches the storage (`nntune worker`).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import optuna

from .._secrets import mask_url
from ..config import public_config
from ..data import check_same_data
from ..errors import ConfigError, NntuneError, check_choice
from ..search import FINISHED, TrialCallback, counts_toward_budget, get_storage
from ..training import idle_cores, pick_device, set_threads
from ._budget import Budget
from ._plan import BuildModel, Plan, plan_of_study, search


@dataclass
class WorkerJob:
    """What a worker is told: where the study is, and optionally the data and model builder
    (needed only when the study was started on in-memory data or a custom `build_model`)."""

    storage: str
    study: str
    data: Any = None
    y: Any = None
    build_model: BuildModel | None = None
    threads: int | None = None
    index: int = 0  # numbers the workers of one run: each samples from its own random stream
    timeout: float | None = None  # seconds from the worker's start; default: the run's deadline
    wait: float = 0.0  # seconds to wait for the study to appear (workers started with the driver)


def publish_run(study: optuna.Study, plan: Plan, budget: Budget) -> None:
    """Store what joining workers need; called by the driver each time it (re)starts, so that
    workers follow the current run's settings. The data reference goes last: a worker waiting
    for the study starts once it is there, and finds the rest already written."""
    previous = study.user_attrs.get("data_ref")
    if previous is not None:
        check_same_data(previous, plan.data_ref)  # a resumed study keeps its data
    study.set_user_attr("config", public_config(plan.cfg))
    study.set_user_attr("n_trials", plan.n_trials)
    study.set_user_attr("run", {"started": time.time() - budget.elapsed(), "timeout": budget.timeout,
                                "tail": budget.tail})
    study.set_user_attr("data_ref", plan.data_ref)


def run_worker(job: WorkerJob, callbacks: Sequence[TrialCallback] = (),
               on_start: Callable[[], None] | None = None) -> int:
    """Join the study and run trials until it has its trials or its time is up; `on_start`
    is called once the study and data are checked. Returns the number of trials it finished."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    attrs = _study_attrs(job)
    if "config" not in attrs or "data_ref" not in attrs:
        raise ConfigError(f"study '{job.study}' was not started by nntune tune; there is nothing to join")
    if attrs.get("family") == "custom" and job.build_model is None:
        raise ConfigError(f"study '{job.study}' tunes a custom build_model; join it from Python with "
                          "nntune.worker(storage, study, build_model=...)")
    plan = plan_of_study(attrs, job.data, job.y, job.build_model, in_memory_hint=(
        f"study '{job.study}' was started on in-memory data; a worker cannot read it: start "
        "the study from a file (--data PATH) or pass the data to nntune.worker(..., data=...)"))
    cfg = plan.cfg
    plan.n_trials = attrs.get("n_trials", plan.n_trials)

    heartbeat = cfg.execution.heartbeat
    study = optuna.load_study(study_name=job.study, storage=get_storage(job.storage, heartbeat, cfg.execution.retries),
                              sampler=plan.sampler(job.index), pruner=plan.pruner())
    set_threads(job.threads if job.threads is not None else cfg.training.threads)
    budget = _budget(attrs.get("run") or {}, job.timeout)
    ran = [0]
    if on_start is not None:
        on_start()

    def count(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        ran[0] += 1

    search(plan, study, budget, pick_device(cfg.training.device), callbacks=[count, *callbacks])
    return ran[0]


def _study_attrs(job: WorkerJob) -> dict[str, Any]:
    """The study's user attributes, waiting up to `job.wait` seconds for the driver to create
    the study and publish its run."""
    storage = get_storage(job.storage)
    give_up = time.monotonic() + job.wait
    while True:
        try:
            attrs = optuna.load_study(study_name=job.study, storage=storage).user_attrs
            if "data_ref" in attrs or time.monotonic() >= give_up:
                return attrs
        except KeyError:
            if time.monotonic() >= give_up:
                waited = f" after waiting {job.wait:g}s" if job.wait else ""
                raise ConfigError(f"study '{job.study}' is not in storage '{mask_url(job.storage)}'{waited}") from None
        time.sleep(0.5)


def _budget(run: dict[str, Any], timeout: float | None) -> Budget:
    """The run's budget as the driver set it (its clock started there: time.time() is the clock
    all machines share), cut shorter by the worker's own `timeout`."""
    if run.get("timeout") is None:
        return Budget(timeout)
    started = time.monotonic() - max(0.0, time.time() - float(run["started"]))
    budget = Budget(float(run["timeout"]), started=started, tail=float(run.get("tail") or 0.0))
    if timeout is not None and time.monotonic() + timeout < budget.deadline:
        return Budget(timeout)
    return budget


def worker_threads(workers: int, threads: int | None) -> int:
    """Torch threads per worker: the given number, or the idle cores shared among them."""
    return threads if threads is not None else max(1, idle_cores() // workers)


def _local_worker(job: WorkerJob, errors: Any) -> None:
    """Body of a spawned worker process; its failure is reported back as one line."""
    try:
        run_worker(job)
    except NntuneError as exc:
        errors.put(str(exc))
        sys.exit(2)
    except BaseException as exc:  # noqa: BLE001  (reported to the driver, which decides)
        errors.put(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        sys.exit(1)


def check_picklable(job: WorkerJob) -> None:
    """Worker processes receive the job pickled: a lambda or a function defined inside
    another cannot be sent, so say so before anything starts."""
    main = sys.modules.get("__main__")
    if (job.build_model is not None and getattr(job.build_model, "__module__", None) == "__main__"
            and not getattr(main, "__file__", None)):
        raise ConfigError("build_model is defined in an interactive session (a notebook or the REPL), which "
                          "worker processes cannot import: move it into a module (a .py file) and import it")
    try:
        pickle.dumps(job.build_model)
    except Exception:
        raise ConfigError("build_model must be a module-level function to run in worker processes "
                          f"(got {getattr(job.build_model, '__qualname__', job.build_model)!r})") from None


def run_local(job: WorkerJob, workers: int, study: optuna.Study,
              callbacks: Sequence[TrialCallback] = (),
              here: Callable[[int, Sequence[TrialCallback]], None] | None = None) -> list[str]:
    """Run `workers` workers on this machine sharing the study, reporting each finished trial
    to `callbacks`. With `here(threads, callbacks)`, this process is one of them (it searches
    while the others start): a worker process pays Python's and torch's start-up, this one
    has paid it already. Returns the first line of each worker's failure (a crashed worker's
    trials were queued again; the run goes on without it)."""
    check_picklable(job)
    threads = worker_threads(workers, job.threads)
    spawned = workers - 1 if here is not None else workers
    context = start_context()
    errors = context.Queue()
    processes = [context.Process(target=_local_worker, args=(replace(job, index=i + 1, threads=threads), errors),
                                 name=f"nntune-worker-{i + 1}", daemon=True) for i in range(spawned)]
    for process in processes:
        process.start()
    messages: list[str] = []
    lock = threading.Lock()  # callbacks hear from this process's trials and from the watcher
    guarded = [_serialised(callback, lock) for callback in callbacks]
    searching = threading.Event()

    def running() -> bool:
        messages.extend(_drain(errors))  # read as they come: a large message blocks its sender
        return searching.is_set() or any(p.is_alive() for p in processes)

    me = os.getpid()
    others = [lambda study, trial, c=c: c(study, trial) if trial.user_attrs.get("worker", {}).get("pid") != me
              else None for c in guarded]
    # The watcher shares this process with its training: it looks less often than a driver
    # that only watches, so as not to take the interpreter from the training loop.
    watcher = threading.Thread(target=watch, args=(study, running, others, 2.0), daemon=True, name="nntune-watch")
    try:
        if here is not None:
            searching.set()
            watcher.start()
            try:
                here(threads, guarded)
            finally:
                searching.clear()
            watcher.join()
        else:
            watch(study, running, guarded)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()
    messages.extend(_drain(errors))
    codes = [p.exitcode for p in processes] + ([0] if here is not None else [])
    _raise_if_failed(study, codes, messages)
    crashed = sum(1 for code in codes if code != 0)
    lines = [m.splitlines()[0] if m else "unknown error" for m in messages]
    return lines + [f"a worker process exited with code {code}" for code in codes if code != 0][len(lines):crashed]


# How local worker processes start: spawn (the default: a fresh interpreter each), or
# forkserver, where each is forked from a server process started once per driver process: with
# nntune preloaded there (multiprocessing.set_forkserver_preload(["nntune.api"]) before the first
# run), every worker after the server's start skips Python's and torch's imports, seconds each.
# The test suite uses it to start many short runs' workers. Never fork: a forked child inherits
# the parent's thread pools and database connections in an unusable state.
START_METHOD_VARIABLE = "NNTUNE_START_METHOD"


def start_context() -> Any:
    """The multiprocessing context local workers are started in (see START_METHOD_VARIABLE)."""
    method = check_choice(START_METHOD_VARIABLE, os.environ.get(START_METHOD_VARIABLE) or "spawn",
                          ("spawn", "forkserver"))
    return multiprocessing.get_context(method)


def _serialised(callback: TrialCallback, lock: threading.Lock) -> TrialCallback:
    def call(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        with lock:
            callback(study, trial)
    return call


def watch(study: optuna.Study, running: Callable[[], bool], callbacks: Sequence[TrialCallback],
          poll: float = 0.5) -> None:
    """Call `callbacks` for trials other processes finish, until `running()` turns false."""
    seen = {t.number for t in study.get_trials(deepcopy=False, states=FINISHED)}
    while True:
        alive = running()
        for trial in study.get_trials(deepcopy=False, states=FINISHED):
            if trial.number not in seen:
                seen.add(trial.number)
                if counts_toward_budget(trial):  # not a dead worker's or a surplus trial
                    for callback in callbacks:
                        callback(study, trial)
        if not alive:
            return
        time.sleep(poll)


def _drain(queue: Any) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(queue.get_nowait())
        except Exception:  # queue.Empty
            return messages


def _raise_if_failed(study: optuna.Study, codes: list[int | None], messages: list[str]) -> None:
    """Workers that crashed are tolerable while others finish the study (their trials are
    queued again). When every worker failed, or no trial completed, the first error is the run's."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if all(code != 0 for code in codes) or (messages and not complete):
        first = messages[0].splitlines()[0] if messages else f"exit codes {codes}"
        raise NntuneError(f"the workers failed: {first}")
