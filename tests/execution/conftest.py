"""Helpers for tests that run workers: the CLI in a new process, a study's trials, slow data."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile

import optuna
import pytest

from nntune.search import get_storage

# Trials of about a second on digits: long enough to be caught (and killed) mid-trial. One
# validation split: these tests are about processes and storage, and the five folds per trial of
# cv auto (tables up to 2,000 rows) would make every trial and the final model five times longer.
SLOW_TRIALS = ("--max-epochs", "40", "--patience", "40", "--threads", "1", "--pruner", "none", "--cv", "none")


# A small fixed network (one layer of 64, batches of 64, no embeddings): the default space's
# widths up to 512 and depths up to 4 make a trial on digits take 2-14 s on a loaded machine,
# and what these tests check (processes, storage, trial counts) does not depend on the network.
# It still learns digits to a linear model's accuracy in 10-20 epochs.
SMALL_NET = {"n_layers": 1, "units": 64, "batch_size": 64, "embedding": "none"}


def small_net_config(folder) -> str:
    """A YAML config fixing SMALL_NET, for the CLI (its positional CONFIG argument)."""
    import yaml

    path = folder / "small_net.yaml"
    path.write_text(yaml.safe_dump({"search": {"space": SMALL_NET}}))
    return str(path)


def trials_of(storage: str, study: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study, storage=get_storage(storage)).get_trials(deepcopy=False)


def _forkserver() -> multiprocessing.context.BaseContext:
    """A server process that imports nntune once (per test process) and forks the processes
    these tests start. A fresh interpreter pays 10-20 s of imports (torch, scikit-learn) on a
    loaded 2-core machine; what is under test (workers joining, dying, sharing a storage) does
    not depend on how a process imported its modules."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["nntune.cli", __name__])  # (no effect once the server runs)
    return context


@pytest.fixture
def forked_workers(monkeypatch):
    """Local worker processes (`workers=N`) forked from the preloaded server instead of spawned
    as fresh interpreters (nntune's NNTUNE_START_METHOD knob)."""
    from nntune.execution._workers import START_METHOD_VARIABLE

    warm_forkserver()
    monkeypatch.setenv(START_METHOD_VARIABLE, "forkserver")


def _nothing() -> None:
    pass


def warm_forkserver() -> multiprocessing.context.BaseContext:
    """The fork server, started and done importing: a test's clock then times its own run,
    and the processes it starts together start together (the first start waits for the
    server's imports, 10-20 s once per test process)."""
    context = _forkserver()
    process = context.Process(target=_nothing)
    process.start()
    process.join(300)
    return context


def _run_cli(args: list[str], out: str, err: str) -> None:
    """Body of a CLI process: `nntune ARGS` with its output in two files."""
    from nntune.execution._workers import START_METHOD_VARIABLE

    os.environ.pop(START_METHOD_VARIABLE, None)  # its own workers start as a user's would
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.argv = ["nntune", *args]
    from nntune.cli import main

    main()


class _Output:
    def __init__(self, path: str) -> None:
        self.path = path

    def read(self) -> str:
        with open(self.path, encoding="utf-8", errors="replace") as handle:
            return handle.read()


class CliProcess:
    """The part of subprocess.Popen these tests use, for a process of the fork server."""

    def __init__(self, args: list[str]) -> None:
        folder = tempfile.mkdtemp(prefix="nntune-cli-")
        self.stdout, self.stderr = _Output(os.path.join(folder, "out")), _Output(os.path.join(folder, "err"))
        for output in (self.stdout, self.stderr):
            open(output.path, "w").close()  # noqa: SIM115  (read as empty if the process dies at once)
        self._process = _forkserver().Process(target=_run_cli, args=(args, self.stdout.path, self.stderr.path),
                                              name="nntune-cli")
        self._process.start()
        self.pid = self._process.pid
        self.args = args

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(["nntune", *self.args], timeout)
        return self._process.exitcode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        return self.stdout.read(), self.stderr.read()

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self._process.kill()


def nntune_cli(*args: str) -> CliProcess:
    """`nntune ARGS` in a new process, as a user (or a cluster scheduler) starts it, except that
    the process is forked from a server that has imported nntune already (see _forkserver)."""
    return CliProcess([str(a) for a in args])


@pytest.fixture
def digits_csv(tmp_path):
    """A file big enough that a trial takes about a second (1,797 rows x 64 pixels)."""
    from sklearn.datasets import load_digits

    path = tmp_path / "digits.csv"
    load_digits(as_frame=True).frame.to_csv(path, index=False)
    return path
