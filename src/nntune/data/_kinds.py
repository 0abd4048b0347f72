"""Which kind of data the user gave, and the reader for it.

A table stays the default: other kinds are chosen by an option that only they take (a text or
time column, a graph name), by what a path is (a folder of class folders, a Planetoid folder,
an array file), by the built-in data set (mnist1d), or by `kind` given outright.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ._arrays import KINDS, ArrayData
from ._tabular import TabularData, load_tabular

ARRAY_SUFFIXES = (".npy", ".npz")
SIGNAL_DATASETS = ("mnist1d",)


@dataclass
class DataOptions:
    """The data section's options that choose and shape a kind (see config.DataConfig)."""

    kind: str = "auto"
    target: str | None = None
    task: str = "auto"
    labels: str | None = None
    text_column: str | None = None
    tokenizer: str = "word"
    vocab_size: int = 20000
    seq_len: int = 128
    time_column: str | None = None
    lookback: int = 24
    horizon: int = 1
    graph: str | None = None
    difficulty_column: str | None = None


def detect_kind(source: Any, dataset: str | None, options: DataOptions) -> str:
    if options.kind != "auto":
        if options.kind not in KINDS:
            raise DataError(f"kind must be one of {', '.join(KINDS)}; got '{options.kind}'")
        return options.kind
    if options.text_column:
        return "text"
    if options.time_column:
        return "timeseries"
    if options.graph:
        return "graph"
    if dataset in SIGNAL_DATASETS:
        return "signal"
    if isinstance(source, np.ndarray) and source.ndim >= 3:
        return _array_kind(source.shape)
    if isinstance(source, str | Path) and Path(source).is_dir():
        return "image"  # a folder of class folders; a graph folder needs --graph NAME
    if isinstance(source, str | Path) and Path(source).suffix.lower() in ARRAY_SUFFIXES:
        return _array_kind(_array_shape(Path(source)))
    return "table"


def _array_kind(shape: tuple[int, ...]) -> str:
    """(N, C, H, W) is images; (N, L) is signals; (N, a, b) is images when it looks like a
    picture (a few channels with a long axis is a signal: (N, C, L))."""
    if len(shape) == 4:
        return "image"
    if len(shape) <= 2:
        return "signal"
    return "signal" if shape[1] <= 4 and shape[2] >= 8 * shape[1] else "image"


def _array_shape(path: Path) -> tuple[int, ...]:
    if not path.exists():
        raise DataError(f"data file '{path}' does not exist")
    if path.suffix.lower() == ".npy":
        return np.load(path, mmap_mode="r").shape
    with np.load(path) as archive:
        key = next((k for k in ("X", "x", "data") if k in archive), None)
        if key is None:
            raise DataError(f"'{path}' holds {', '.join(archive.files)}; nntune reads the samples from 'X' "
                            "and the labels from 'y'")
        return archive[key].shape


def load_data(source: Any, *, y: Any = None, dataset: str | None = None,
              options: DataOptions | None = None) -> TabularData | ArrayData:
    """The user's data as a table or as samples of another kind; raises DataError on bad input."""
    options = options or DataOptions()
    kind = detect_kind(source, dataset, options)
    if kind == "table":
        return load_tabular(source, options.target, y=y, dataset=dataset, task=options.task,
                            difficulty_column=options.difficulty_column)
    if kind == "image":
        from ._images import load_images
        return load_images(source, y=y, dataset=dataset, labels=options.labels, task=options.task)
    if kind == "signal":
        from ._signals import load_signals
        return load_signals(source, y=y, dataset=dataset, labels=options.labels, task=options.task)
    if kind == "timeseries":
        from ._timeseries import load_timeseries
        return load_timeseries(_path(source, kind), time_column=options.time_column, target=options.target,
                               lookback=options.lookback, horizon=options.horizon)
    if kind == "text":
        from ._text import load_text
        return load_text(_path(source, kind), text_column=options.text_column, target=options.target,
                         tokenizer=options.tokenizer, vocab_size=options.vocab_size, seq_len=options.seq_len,
                         task=options.task)
    from ._graph import load_graph
    return load_graph(_path(source, kind), name=options.graph)


def _path(source: Any, kind: str) -> Path:
    if not isinstance(source, str | Path):
        raise DataError(f"{kind} data is read from a file or folder; got {type(source).__name__}")
    return Path(source)
