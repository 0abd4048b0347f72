"""Study storage: Optuna's RDB storage (SQLite in the run directory unless a URL is given,
PostgreSQL for several machines) or Optuna's journal file storage.

Several processes may work on one study at once. What they share lives in the storage only:
which trials count toward the budget, which running trials belong to a dead worker.
"""

from __future__ import annotations

import datetime
import os
import socket
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna

from .._secrets import mask_url, scrub, without_mask
from ..errors import ConfigError, StudyExistsError
from ._objectives import Objectives, feasible, pick_trial

TrialState = optuna.trial.TrialState
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
JOURNAL_SUFFIXES = (".journal", ".log")
# SQLite serialises writers; several workers wait for each other's short transactions instead
# of failing with "database is locked" after the driver's default of 5 seconds.
SQLITE_BUSY_SECONDS = 120


def storage_url(storage: str | None, run_dir: Path) -> str:
    """The storage of a run: a SQLAlchemy URL, a journal file (`*.journal`), or by default
    `sqlite:///<run_dir>/study.db`."""
    if storage:
        if "://" in storage or is_journal(storage):
            return storage
        raise ConfigError(
            f"storage must be a SQLAlchemy URL such as sqlite:///study.db or "
            f"postgresql://host/db, or a journal file ending in .journal; got '{mask_url(storage)}'")
    return f"sqlite:///{(run_dir / 'study.db').as_posix()}"


def is_journal(url: str) -> bool:
    return "://" not in url and url.endswith(JOURNAL_SUFFIXES)


def absolute_storage(url: str) -> str:
    """The same storage with a relative file path made absolute, for processes that start
    in another directory (Ray's workers do)."""
    if is_journal(url):
        return str(Path(url).resolve())
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            return f"sqlite:///{Path(path).resolve().as_posix()}"
    return url


def get_storage(url: str, heartbeat: float | None = None,
                retries: int | None = None) -> optuna.storages.BaseStorage:
    """Open a storage. With `heartbeat` (seconds), a running trial writes a heartbeat that
    often, and one silent for three heartbeats is failed and queued again (up to `retries`
    times) by whichever worker notices it first: Optuna's own mechanism, database storage only."""
    url = without_mask(url)  # a URL read back from result.json: the driver finds the password
    _check_study_file(url)
    if is_journal(url):
        path = Path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        kwargs["engine_kwargs"] = {"creator": _sqlite_connector(url.removeprefix("sqlite:///"))}
    elif url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": SQLITE_BUSY_SECONDS}}
    if heartbeat is not None:
        interval = max(1, round(heartbeat))
        kwargs.update(heartbeat_interval=interval, grace_period=3 * interval,
                      heartbeat_stale_trial_callback=retry_callback(retries))
    for attempt in range(3):
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, **kwargs)
        except ImportError:
            raise ConfigError(f"storage '{mask_url(url)}' needs a database driver that is not installed: "
                              "pip install 'nntune[postgres]' for PostgreSQL") from None
        except Exception as exc:
            # Processes opening a new database at the same moment both create its tables; the
            # loser fails on a duplicate and finds the tables there on its next attempt.
            if attempt == 2 or not _is_duplicate(exc):
                reason = scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, url)
                raise ConfigError(f"storage '{mask_url(url)}' cannot be opened: {reason}") from None
            time.sleep(0.2 + 0.3 * attempt)
    raise AssertionError("unreachable")


def _sqlite_connector(path: str):
    """Connections to a study file in write-ahead-log mode with `synchronous=NORMAL`: a trial
    reports every epoch, and a commit that waits for the disk each time took 15% of a small
    table's tuning time. In WAL mode this setting never corrupts the file; a power cut can lose
    only the last commits. WAL also lets workers read while another writes."""
    import sqlite3

    def connect():
        connection = sqlite3.connect(path, timeout=SQLITE_BUSY_SECONDS, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    return connect


def _check_study_file(url: str) -> None:
    """A file storage that exists must be a study file: Optuna would otherwise append its
    records to a user's log file or add its tables to a user's SQLite database."""
    if is_journal(url):
        path = Path(url)
        if path.is_file() and path.stat().st_size:
            with open(path, encoding="utf-8", errors="replace") as handle:
                first = handle.readline()
            if '"op_code"' not in first:
                raise ConfigError(f"storage '{url}' exists and is not an Optuna journal file; "
                                  "choose another --storage or remove it")
    elif url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///"))
        if path.is_file() and path.stat().st_size:
            import sqlite3

            try:
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
                    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            except sqlite3.DatabaseError:
                tables = {"(not a database)"}
            if tables and "studies" not in tables:
                raise ConfigError(f"storage '{url}' is a SQLite file without Optuna's tables; "
                                  "choose another --storage or remove it")


def _is_duplicate(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("unique", "duplicate", "already exists"))


def retry_callback(retries: int | None) -> optuna.storages.RetryHeartbeatStaleTrialCallback:
    """Queues a failed trial again with the same parameters (Optuna's callback)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=retries)


def fail_stale_trials(study: optuna.Study) -> None:
    """Optuna's heartbeat check: fail (and queue again) trials silent past the grace period."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def study_exists(storage: optuna.storages.BaseStorage, name: str) -> bool:
    return any(s.study_name == name for s in storage.get_all_studies())


def open_study(
    name: str,
    storage: optuna.storages.BaseStorage,
    direction: str | Sequence[str],
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    resume: bool,
) -> tuple[optuna.Study, bool]:
    """Create the study, or with `resume` continue it (creating it when absent).

    Returns (study, created). Without `resume`, an existing study is an error, so that a
    repeated command never mixes two runs silently.
    """
    exists = study_exists(storage, name)
    if exists and not resume:
        raise StudyExistsError(
            f"study '{name}' already exists in this storage; pass --resume to continue it, "
            f"or --study NEW_NAME to start another")
    directions = [direction] if isinstance(direction, str) else list(direction)
    if exists:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        stored = [d.name.lower() for d in study.directions]
        if stored != directions:
            raise ConfigError(
                f"study '{name}' was created to {' and '.join(stored)} its objectives; "
                f"this run would {' and '.join(directions)}: keep the study's objectives or use a new --study")
        return study, False
    study = optuna.create_study(study_name=name, storage=storage, directions=directions,
                                sampler=sampler, pruner=pruner)
    return study, True


def count_states(study: optuna.Study) -> dict[str, int]:
    """Trials by state name, lower case: {'complete': 12, 'pruned': 3, ...}. Queued trials
    that never started (a starting point the budget left no time for) are not counted; a
    surplus trial (see run_trials) is counted as 'surplus', not as a failure."""
    counts = Counter("surplus" if t.user_attrs.get("surplus") else t.state.name.lower()
                     for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING)
    return dict(sorted(counts.items()))


def counts_toward_budget(trial: optuna.trial.FrozenTrial) -> bool:
    """Complete, pruned and failed trials use up the trial budget; a trial whose worker died
    (failed without a reason, and queued again) and a surplus one (see run_trials) do not."""
    if trial.state == TrialState.FAIL:
        return "fail_reason" in trial.user_attrs and not trial.user_attrs.get("surplus")
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED)


def finished_trials(study: optuna.Study) -> int:
    """Trials that count toward the budget (see counts_toward_budget)."""
    return sum(counts_toward_budget(t) for t in study.get_trials(deepcopy=False, states=FINISHED))


def _machine() -> str:
    """This machine and PID namespace: a hostname alone is shared by containers and cloned VMs
    whose process ids are not comparable."""
    parts = [socket.gethostname()]
    try:
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:  # not Linux: the hostname is what there is
        pass
    return ":".join(parts)


def worker_identity() -> dict[str, Any]:
    """Who runs a trial: machine, process id and the process's start time (pids are reused)."""
    import psutil

    pid = os.getpid()
    return {"host": socket.gethostname(), "machine": _machine(), "pid": pid,
            "started": round(psutil.Process(pid).create_time(), 2)}


def _alive(worker: dict[str, Any]) -> bool:
    import psutil

    try:
        return abs(psutil.Process(int(worker["pid"])).create_time() - float(worker["started"])) < 1.0
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


# A running trial records its worker within milliseconds of starting; one without a worker
# for this long was started by a process that died at once (or by an older nntune).
UNCLAIMED_SECONDS = 60.0


def _dead(trial: optuna.trial.FrozenTrial, machine: str, now: datetime.datetime) -> bool:
    worker = trial.user_attrs.get("worker")
    if isinstance(worker, dict) and worker.get("trial") == trial.number:
        return worker.get("machine") == machine and not _alive(worker)
    # No worker of its own yet (a retry carries its dead predecessor's): give it time to claim.
    started = trial.datetime_start
    return started is not None and (now - started).total_seconds() > UNCLAIMED_SECONDS


def fail_dead_trials(study: optuna.Study, retries: int | None,
                     trials: list[optuna.trial.FrozenTrial] | None = None) -> list[int]:
    """Fail the running trials of workers on this machine that no longer exist (and trials no
    worker claimed for a minute), and queue each again (up to `retries` times). Returns their
    numbers.

    Heartbeats find dead workers on any host, but only after their grace period and only in a
    database; a process on this host can be checked at once, which lets a killed run resume
    immediately and works with the journal file storage too. `trials`: the study's trials
    when the caller has just read them.
    """
    machine = _machine()
    now = datetime.datetime.now()
    storage = study._storage
    failed = []
    if trials is None:
        trials = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in trials:
        if trial.state != TrialState.RUNNING or not _dead(trial, machine, now):
            continue
        try:
            if storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                failed.append(trial._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker got there first
    retry = retry_callback(retries)
    for trial_id in failed:
        retry(study, storage.get_trial(trial_id))
    return [storage.get_trial(i).number for i in failed]


def trial_records(storage: str, study_name: str) -> list[dict]:
    """The study's trials as plain dicts (number, state, value, params, user attributes)."""
    study = optuna.load_study(study_name=study_name, storage=get_storage(storage))
    return [{"number": t.number, "state": t.state.name.lower(), "value": t.values[0] if t.values else None,
             "values": t.values, "params": t.params, **t.user_attrs} for t in study.get_trials(deepcopy=False)]


def best_first(direction: str) -> Callable[[optuna.trial.FrozenTrial], tuple]:
    """A sort key putting complete trials best first as `best_trial` picks: by score, ties by
    the lower validation loss, then the earlier trial."""
    sign = -1.0 if direction == "maximize" else 1.0
    return lambda t: (sign * t.values[0], t.user_attrs.get("val_loss", float("inf")), t.number)


def best_trial(study: optuna.Study, objectives: Objectives | None = None) -> optuna.trial.FrozenTrial | None:
    """The best completed trial; among trials with the same score, the lowest settled
    validation loss (the median around the best epoch, see the objective).

    Accuracy on a small validation set ties often (several trials at 1.0): the loss tells
    the more confident of them apart, where Optuna would keep the first one found.
    """
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if objectives is not None and objectives.constraints:
        done = [t for t in done if feasible(t, objectives)]
    if not done:
        return None
    if len(study.directions) > 1:
        return pick_trial(pareto_front(study, objectives), objectives or _objectives_of(study))
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
    top = max(sign * t.value for t in done)
    tied = [t for t in done if sign * t.value == top]
    return min(tied, key=lambda t: (t.user_attrs.get("val_loss", float("inf")), t.number))


def pareto_front(study: optuna.Study, objectives: Objectives | None = None) -> list[optuna.trial.FrozenTrial]:
    """The complete trials no other complete (and feasible) trial beats on every objective."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if objectives is not None and objectives.constraints:
        done = [t for t in done if feasible(t, objectives)]
    signs = [1.0 if d == optuna.study.StudyDirection.MAXIMIZE else -1.0 for d in study.directions]

    def dominates(a: optuna.trial.FrozenTrial, b: optuna.trial.FrozenTrial) -> bool:
        better = [s * x >= s * y for s, x, y in zip(signs, a.values, b.values, strict=True)]
        strictly = [s * x > s * y for s, x, y in zip(signs, a.values, b.values, strict=True)]
        return all(better) and any(strictly)

    return [t for t in done if not any(dominates(o, t) for o in done if o is not t)]


def _objectives_of(study: optuna.Study) -> Objectives:
    names = tuple(study.user_attrs.get("objectives") or [f"objective {i}" for i in range(len(study.directions))])
    return Objectives(names, tuple(d.name.lower() for d in study.directions))
