"""Helpers of the compression tests: a run's data as the API reads it, and running a short
script in a fresh Python process (what a saved model must survive)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nntune.compression import RunData

from .._fresh import run_script

PREDICT = """
import sys
import numpy as np

from nntune.compression import RunData
import nntune

np.save(sys.argv[3], nntune.load(sys.argv[2]).predict_proba(np.load(sys.argv[1])))
"""


def run_data(run_dir: Path) -> RunData:
    """What `nntune.compress` hands the compression package: the model and the run's rows."""
    from nntune.api import _run_arrays

    return RunData(**_run_arrays(run_dir, None, None, "compress"))


def run_fresh(script: str, *args: object) -> None:
    """Run `script` with `args` as sys.argv[1:] in a new process (see _fresh.py); fail with its stderr."""
    done = run_script(script, *args, timeout=120)
    assert done.returncode == 0, done.stderr


def fresh_predict_proba(model_dir: Path, rows: np.ndarray, tmp_path: Path) -> np.ndarray:
    """`nntune.load(model_dir).predict_proba(rows)`, computed in a fresh process."""
    rows_file, result = tmp_path / "fresh-rows.npy", tmp_path / "fresh-proba.npy"
    np.save(rows_file, rows)
    run_fresh(PREDICT, rows_file, model_dir, result)
    return np.load(result)
