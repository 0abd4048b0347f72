"""Data that is not a table: images, signals, time-series windows, texts and graph nodes.

`ArrayData` stands beside `TabularData` and answers the same questions (rows, labels, task,
classes, splits); its samples are an array whose first axis is the row. Each kind brings an
`Encoder`, fitted on the training rows only (as the table's preprocessing is) and saved with
the model as JSON, that turns raw samples into what the network takes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from ..errors import DataError

KINDS = ("table", "image", "signal", "timeseries", "text", "graph")


class Encoder(Protocol):
    """Fitted on training samples; turns samples into model input; saved as JSON."""

    name: ClassVar[str]

    def fit(self, X: np.ndarray) -> Encoder: ...

    def transform(self, X: np.ndarray) -> np.ndarray: ...

    def model_input(self) -> dict[str, Any]:
        """ModelMeta fields the encoded samples imply: input_shape, vocab_size, extra."""
        ...

    def to_json(self) -> dict[str, Any]: ...


_ENCODERS: dict[str, Callable[[dict[str, Any]], Encoder]] = {}


def register_encoder(name: str, from_json: Callable[[dict[str, Any]], Encoder]) -> None:
    """Make an encoder loadable from its JSON (`{"name": ..., ...}`) by a saved model."""
    _ENCODERS[name] = from_json


def encoder_from_json(data: dict[str, Any]) -> Encoder:
    name = data.get("name")
    if name not in _ENCODERS:
        raise DataError(f"unknown encoder '{name}' in the saved model; known: {', '.join(sorted(_ENCODERS))}")
    return _ENCODERS[name](data)


class LabelledRows:
    """What tables and other samples share: rows with encoded labels `y` of a `task`."""

    y: np.ndarray
    task: str
    classes: list

    @property
    def n_rows(self) -> int:
        return len(self.y)

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"

    def class_counts(self) -> dict:
        """{'classes': {label: rows}} for classification, {} for regression."""
        if not self.is_classification:
            return {}
        counts = np.bincount(self.y, minlength=len(self.classes))
        return {"classes": {str(c): int(n) for c, n in zip(self.classes, counts, strict=True)}}


@dataclass
class ArrayData(LabelledRows):
    """Samples (first axis = row) with encoded labels, like TabularData for a table.

    `features`: float arrays (N, C, H, W) for images, (N, C, L) for signals and windows, an
    object array of strings for texts, node indices for a graph. `fixed_split`: (train, val,
    test) rows when the data comes with its split (Cora's public one). `chronological`: splits
    keep time order (time series). `make_encoder` builds a fresh, unfitted encoder.
    """

    features: np.ndarray
    y: np.ndarray
    task: str
    kind: str
    name: str
    make_encoder: Callable[[], Encoder]
    target: str = "target"
    classes: list = field(default_factory=list)
    fixed_split: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    # With a fixed split, whether the final model also trains on the validation rows. Cora's
    # protocol trains on its 140 training nodes only (published scores assume it); mnist1d's
    # validation rows are carved out of its training set, so they go back in.
    final_on_validation: bool = True
    chronological: bool = False
    details: dict[str, Any] = field(default_factory=dict)  # shown by describe(): image size, vocabulary, ...
    # What TabularData also carries; not used by these kinds yet.
    schema: Any = None
    difficulty: np.ndarray | None = None
    unlabeled: Any = None

    def __post_init__(self) -> None:
        if len(self.features) != len(self.y):
            raise DataError(f"{self.name}: {len(self.features)} samples but {len(self.y)} labels")

    def describe(self) -> dict:
        return {"name": self.name, "rows": self.n_rows, "kind": self.kind, "task": self.task,
                "target": self.target, "sample_shape": list(np.shape(self.features)[1:]), **self.details,
                **self.class_counts()}


def encode_labels(labels: np.ndarray, task: str) -> tuple[np.ndarray, list]:
    """Class codes (int64) and the sorted classes, or float64 values for regression."""
    if task == "regression":
        return np.asarray(labels, dtype=np.float64), []
    classes, codes = np.unique(np.asarray(labels), return_inverse=True)
    return codes.astype(np.int64), classes.tolist()


class Standardize:
    """Per-channel standardization of float samples (N, C, ...): mean and std over the
    training rows and every position, so no statistic is taken from validation or test rows."""

    name: ClassVar[str] = "standardize"

    def __init__(self, mean: list[float] | None = None, std: list[float] | None = None,
                 sample_shape: list[int] | None = None) -> None:
        self.mean, self.std, self.sample_shape = mean, std, sample_shape

    def fit(self, X: np.ndarray) -> Standardize:
        X = np.asarray(X, dtype=np.float32)
        axes = (0, *range(2, X.ndim))
        self.mean = X.mean(axis=axes, dtype=np.float64).tolist()
        self.std = np.maximum(X.std(axis=axes, dtype=np.float64), 1e-8).tolist()
        self.sample_shape = list(X.shape[1:])
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if list(X.shape[1:]) != self.sample_shape:
            raise DataError(f"samples of shape {tuple(X.shape[1:])}; the model takes {tuple(self.sample_shape)}")
        view = (1, -1, *([1] * (X.ndim - 2)))
        mean = np.asarray(self.mean, dtype=np.float32).reshape(view)
        std = np.asarray(self.std, dtype=np.float32).reshape(view)
        return np.ascontiguousarray((X - mean) / std, dtype=np.float32)

    def model_input(self) -> dict[str, Any]:
        return {"input_shape": tuple(self.sample_shape)}

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "mean": self.mean, "std": self.std, "sample_shape": self.sample_shape}


register_encoder(Standardize.name, lambda d: Standardize(d["mean"], d["std"], d["sample_shape"]))
