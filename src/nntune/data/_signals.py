"""Signals (1-D sequences with channels) as ArrayData: from an array, a .npy/.npz file, or MNIST-1D.

`load_data` calls `load_signals` for (N, L) and (N, C, L) arrays and for `dataset="mnist1d"`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from ..errors import DataError, check_choice
from ._arrays import ArrayData
from ._images import check_one_source, labelled_data, read_samples
from ._kinds import SIGNAL_DATASETS

# MNIST-1D's own split is its first 4,000 samples for training and the last 1,000 for test;
# the validation rows are a fixed stratified share of the training ones.
MNIST1D_VAL_SHARE = 0.1
MNIST1D_SPLIT_SEED = 0


def load_signals(source: Any = None, *, y: Any = None, dataset: str | None = None, labels: str | None = None,
                 task: str = "auto") -> ArrayData:
    """Signals (N, C, L) float32 with their labels, standardized per channel by the encoder.

    `source`: an array (N, C, L) or (N, L) (one channel) with labels `y`; a .npy file with
    labels in the .npy file `labels`; or a .npz file holding `X` and `y`.
    `dataset="mnist1d"`: MNIST-1D, 5,000 signals of length 40 in 10 classes, with its fixed
    4,000/1,000 train/test split (see `mnist1d_arrays` for where it comes from). Raises
    DataError on bad input.

    >>> load_signals(np.zeros((4, 30)), y=[0, 1, 0, 1]).features.shape
    (4, 1, 30)
    """
    check_one_source(source, dataset)
    if dataset is not None:
        check_choice("dataset", dataset, SIGNAL_DATASETS)
        return _mnist1d(task)
    samples, raw_labels, name = read_samples(source, y=y, labels=labels, what="signals")
    if samples.ndim == 2:
        samples = samples[:, None]
    elif samples.ndim != 3:
        raise DataError(f"signals must be an array of shape (N, C, L) or (N, L); got shape {samples.shape}")
    return labelled_data(samples, raw_labels, task, kind="signal", name=name,
                         details={"signal_shape": list(samples.shape[1:])})


def _mnist1d(task: str) -> ArrayData:
    signals, labels, n_train = mnist1d_arrays()
    train, val = train_test_split(np.arange(n_train), test_size=MNIST1D_VAL_SHARE,
                                  random_state=MNIST1D_SPLIT_SEED, stratify=labels[:n_train])
    split = (np.sort(train), np.sort(val), np.arange(n_train, len(labels)))
    return labelled_data(signals, labels, task, kind="signal", name="mnist1d", fixed_split=split,
                         details={"signal_shape": list(signals.shape[1:]),
                                  "split": f"{len(train)} train / {len(val)} validation / {len(split[2])} test"})


def mnist1d_arrays() -> tuple[np.ndarray, np.ndarray, int]:
    """MNIST-1D as (signals (5000, 1, 40) float32, labels int64, number of training rows).

    Generated offline by the `mnist1d` package with its default arguments (never downloaded).
    Importing the package and generating take a few seconds, so the arrays are cached in
    `~/.cache/nntune/mnist1d-<hash>.npz` (`$XDG_CACHE_HOME/nntune` when set), keyed by the
    package version, which fixes the default arguments. Delete the file to regenerate it.
    """
    version = _mnist1d_version()
    path = _cache_dir() / f"mnist1d-{hashlib.sha256(f'mnist1d {version} defaults'.encode()).hexdigest()[:12]}.npz"
    cached = _read_cache(path)
    if cached is not None:
        return cached
    signals, labels, n_train, args = _generate_mnist1d()
    _write_cache(path, signals=signals, labels=labels, n_train=n_train, args=json.dumps(args))
    return signals, labels, n_train


def _mnist1d_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mnist1d")
    except PackageNotFoundError:
        raise DataError("the mnist1d data set needs the mnist1d package: pip install 'nntune[mnist1d]'") from None


def _generate_mnist1d() -> tuple[np.ndarray, np.ndarray, int, dict]:
    from mnist1d.data import get_dataset_args, make_dataset  # make_dataset never touches the network

    args = get_dataset_args()
    # make_dataset reseeds the global random generators; give the caller theirs back.
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        generated = make_dataset(args)
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    signals = np.concatenate([generated["x"], generated["x_test"]]).astype(np.float32)[:, None]
    labels = np.concatenate([generated["y"], generated["y_test"]]).astype(np.int64)
    settings = {k: v for k, v in vars(args).items() if k != "url"}
    return signals, labels, len(generated["y"]), settings


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nntune"


def _read_cache(path: Path) -> tuple[np.ndarray, np.ndarray, int] | None:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return archive["signals"], archive["labels"], int(archive["n_train"])
    except Exception:  # missing, truncated or from another layout: generate again
        return None


def _write_cache(path: Path, **arrays: Any) -> None:
    """Write next to the target and rename, so a reader never sees half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(file, **arrays)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
    except OSError:
        pass  # the cache only saves time: an unwritable cache dir must not stop the run
