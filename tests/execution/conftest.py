"""Helpers for tests that run workers: the CLI in a new process, a study's trials, slow data."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest

from nntune.search import get_storage

# Trials of about a second on digits: long enough to be caught (and killed) mid-trial. One
# validation split: these tests are about processes and storage, and the five folds per trial of
# cv auto (tables up to 2,000 rows) would make every trial and the final model five times longer.
SLOW_TRIALS = ("--max-epochs", "40", "--patience", "40", "--threads", "1", "--pruner", "none", "--cv", "none")


def trials_of(storage: str, study: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study, storage=get_storage(storage)).get_trials(deepcopy=False)


def nntune_cli(*args: str, **kwargs) -> subprocess.Popen:
    """`nntune ARGS` in a new process, as a user (or a cluster scheduler) starts it."""
    code = "import sys; from nntune.cli import main; sys.argv[0] = 'nntune'; main()"
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.fixture
def digits_csv(tmp_path):
    """A file big enough that a trial takes about a second (1,797 rows x 64 pixels)."""
    from sklearn.datasets import load_digits

    path = tmp_path / "digits.csv"
    load_digits(as_frame=True).frame.to_csv(path, index=False)
    return path
