"""The tabular data bundle: features, encoded target, task and the splits the search uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit, train_test_split

from ..errors import ConfigError, DataError
from ._arrays import ArrayData, LabelledRows
from ._preprocess import make_preprocessor, numeric_width, transform
from ._schema import Schema, conform, infer_schema
from ._sources import as_table
from ._task import detect_task

# Most training rows the preprocessing statistics are fitted on (see encode_split).
FIT_ROWS = 200_000


@dataclass
class TabularData(LabelledRows):
    """Everything the search needs to know about one table, with the target already encoded.

    `y` holds class codes (int64, indexes into `classes`) for classification and float64
    values for regression.
    """

    features: pd.DataFrame
    y: np.ndarray
    task: str
    schema: Schema
    target: str
    name: str
    classes: list = field(default_factory=list)
    # A curriculum's difficulty per row (higher = harder), taken out of the features.
    difficulty: np.ndarray | None = None
    # Rows without labels, for autoencoder pretraining: the same feature columns, conformed.
    unlabeled: pd.DataFrame | None = None

    def describe(self) -> dict:
        return {"name": self.name, "rows": self.n_rows, "features": len(self.schema.columns),
                "task": self.task, "target": self.target, **self.class_counts()}


def load_tabular(
    data: str | Path | pd.DataFrame | np.ndarray | None = None,
    target: str | None = None,
    *,
    y: np.ndarray | pd.Series | None = None,
    dataset: str | None = None,
    task: str = "auto",
    difficulty_column: str | None = None,
) -> TabularData:
    """Read the user's data, detect the task and encode the target. Raises DataError on bad input.

    `difficulty_column`: a numeric column that ranks rows for a curriculum (higher = harder);
    it is kept apart and is not a feature."""
    features, target_values, name = as_table(data, target, y, dataset)
    difficulty = None
    if difficulty_column is not None:
        features, difficulty = _pop_difficulty(features, difficulty_column)
    task = detect_task(target_values, task)
    schema = infer_schema(features)
    frame = conform(features, schema)
    if task == "regression":
        encoded = pd.to_numeric(target_values, errors="raise").to_numpy(dtype=np.float64)
        classes: list = []
    else:
        classes_array, encoded = np.unique(target_values.to_numpy(), return_inverse=True)
        classes = classes_array.tolist()
        encoded = encoded.astype(np.int64)
    return TabularData(frame, encoded, task, schema, str(target_values.name), name, classes, difficulty)


def _pop_difficulty(features: pd.DataFrame, column: str) -> tuple[pd.DataFrame, np.ndarray]:
    if column not in features.columns:
        shown = ", ".join(str(c) for c in list(features.columns)[:20])
        raise DataError(f"curriculum column '{column}' is not in the data; its columns: {shown}")
    values = pd.to_numeric(features[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = int(np.isnan(values).sum())
    if bad:
        raise DataError(f"curriculum column '{column}' must hold a number for every row (higher = harder); "
                        f"{bad} row(s) are empty or not numeric")
    return features.drop(columns=[column]), values


def attach_unlabeled(data: TabularData, frame: pd.DataFrame, source: str = "the unlabeled data") -> None:
    """Keep rows without labels (for autoencoder pretraining) beside the table, checked against
    its feature columns; a target or curriculum column in them is ignored."""
    if len(frame) == 0:
        raise DataError(f"{source} has no rows")
    try:
        data.unlabeled = conform(frame, data.schema)
    except DataError as exc:
        raise DataError(f"{source}: {exc}") from None


def split_train_test(data: TabularData, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out the test rows, stratified by class for classification. Returns index arrays."""
    if not 0.0 < test_size < 1.0:
        raise ConfigError(f"test_size must be between 0 and 1 (exclusive); got {test_size}")
    if getattr(data, "fixed_split", None) is not None:
        train, val, test = data.fixed_split  # the data's own split (validation rows: see make_folds)
        if not data.final_on_validation:
            return np.sort(train), np.sort(test)
        return np.sort(np.concatenate([train, val])), np.sort(test)
    if getattr(data, "chronological", False):
        # The last share of time is the test period; the gap keeps every training target at or
        # before the first test window's forecast origin (see _forecast_gap).
        n_test = int(np.ceil(test_size * data.n_rows))
        n_train = data.n_rows - n_test - _forecast_gap(data)
        _check_training_windows(data, n_train, f"test_size {test_size}")
        return np.arange(n_train), np.arange(data.n_rows - n_test, data.n_rows)
    _check_class_sizes(data, minimum=2, purpose="the train/test split")
    index = np.arange(data.n_rows)
    n_test = int(np.ceil(test_size * data.n_rows))
    if data.is_classification and n_test < len(data.classes):
        raise DataError(
            f"test_size {test_size} leaves {n_test} test rows, fewer than the "
            f"{len(data.classes)} classes; give a larger test_size or more data"
        )
    if data.n_rows - n_test < 4:
        raise DataError(f"the data has {data.n_rows} rows: too few to train and test a network")
    stratify = data.y if data.is_classification else None
    train, test = train_test_split(index, test_size=test_size, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(test)


def make_folds(
    data: TabularData, rows: np.ndarray, cv: int | None, val_size: float, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split `rows` into (train, validation) pairs: k folds when `cv` is set, else one holdout split.

    Data with its own split keeps its validation rows; a time series is split in time order
    (expanding windows with cv, the last share of time as validation otherwise)."""
    if getattr(data, "fixed_split", None) is not None and cv is None:
        train, val, _ = data.fixed_split
        return [(np.sort(train), np.sort(val))]
    if cv is not None and cv < 2:
        raise ConfigError(f"cv must be at least 2 folds (or unset for a validation split); got {cv}")
    if getattr(data, "chronological", False):
        return _chronological_folds(data, np.sort(rows), cv, val_size)
    y = data.y[rows]
    stratify = data.is_classification
    if cv is not None:
        if stratify:
            smallest = int(np.bincount(y).min())
            if smallest < cv:
                raise DataError(
                    f"cv={cv} needs at least {cv} training rows of every class; the smallest class has {smallest}"
                )
            splitter = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
        else:
            splitter = KFold(n_splits=cv, shuffle=True, random_state=seed)
        return [(rows[tr], rows[va]) for tr, va in splitter.split(rows, y)]
    if not 0.0 < val_size < 1.0:
        raise ConfigError(f"val_size must be between 0 and 1 (exclusive); got {val_size}")
    tr, va = train_test_split(
        np.arange(len(rows)), test_size=val_size, random_state=seed,
        stratify=y if stratify and np.bincount(y).min() >= 2 else None,
    )
    return [(rows[np.sort(tr)], rows[np.sort(va)])]


def _forecast_gap(data: TabularData | ArrayData) -> int:
    """Windows left out between training and the later (validation or test) windows.

    Window i's forecast origin (its last input) is at position i+lookback-1 and its target at
    i+lookback-1+horizon. With horizon h, the h-1 windows just before the first later window j
    have targets after j's origin, values j's forecast cannot know; leaving them out puts the
    last training target at j's origin, which j's forecast does know (its last input)."""
    return int(getattr(data, "details", {}).get("horizon", 1)) - 1


# Fewest training windows a time-ordered split leaves: one target has no spread to scale by.
MIN_TRAINING_WINDOWS = 2


def _check_training_windows(data: TabularData | ArrayData, n_train: int, asked: str) -> None:
    if n_train < MIN_TRAINING_WINDOWS:
        horizon = int(getattr(data, "details", {}).get("horizon", 1))
        raise DataError(f"{asked} leaves {max(n_train, 0)} window(s) to train on (horizon {horizon} also leaves "
                        f"out the {horizon - 1} window(s) before each held-out part); at least {MIN_TRAINING_WINDOWS} "
                        "are needed: give a longer series, fewer held-out windows, or a shorter lookback or horizon")


def _chronological_folds(data: TabularData | ArrayData, rows: np.ndarray, cv: int | None,
                         val_size: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Time-ordered (train, validation) pairs of sorted `rows`: expanding windows with cv, the
    last share of time as validation otherwise; the forecast gap before each validation part."""
    gap = _forecast_gap(data)
    if cv is None:
        n_val = max(1, int(np.ceil(val_size * len(rows))))
        n_train = len(rows) - n_val - gap
        _check_training_windows(data, n_train, f"val_size {val_size}")
        return [(rows[:n_train], rows[-n_val:])]
    # TimeSeriesSplit's first fold trains on what precedes cv validation parts and the gap.
    part = len(rows) // (cv + 1)
    n_train = len(rows) - gap - cv * part if part else 0
    _check_training_windows(data, n_train, f"cv={cv} on {len(rows)} training windows")
    return [(rows[tr], rows[va]) for tr, va in TimeSeriesSplit(n_splits=cv, gap=gap).split(rows)]


@dataclass
class EncodedSplit:
    """One (train, evaluation) pair as float32 matrices, with the preprocessor fitted on train."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_eval: np.ndarray | None
    y_eval: np.ndarray | None
    preprocessor: object
    difficulty: np.ndarray | None = None  # the training rows' curriculum difficulty, if given
    X_unlabeled: np.ndarray | None = None  # unlabeled rows, through the same preprocessor

    @property
    def n_features(self) -> int:
        return self.X_train.shape[1]

    def model_input(self) -> dict:
        """The ModelMeta fields these samples imply (input_dim, and for non-table kinds the
        sample shape, vocabulary and extras)."""
        if hasattr(self.preprocessor, "model_input"):
            extra = self.preprocessor.model_input()
            shape = tuple(extra.get("input_shape", self.X_train.shape[1:]))
            return {"input_dim": int(np.prod(shape)) if shape else 1, **extra, "input_shape": shape}
        return {"input_dim": self.n_features, "input_shape": (self.n_features,),
                "extra": {"numeric_columns": numeric_width(self.preprocessor)}}


def encode_split(data: TabularData | ArrayData, train_rows: np.ndarray,
                 eval_rows: np.ndarray | None) -> EncodedSplit:
    """Fit the preprocessing on `train_rows` only and apply it to both sets (no leakage)."""
    if isinstance(data, ArrayData):
        encoder = data.make_encoder().fit(data.features[train_rows])
        X_eval = encoder.transform(data.features[eval_rows]) if eval_rows is not None else None
        return EncodedSplit(encoder.transform(data.features[train_rows]), data.y[train_rows], X_eval,
                            data.y[eval_rows] if eval_rows is not None else None, encoder)
    preprocessor = make_preprocessor(data.schema)
    fit_rows = train_rows
    if len(train_rows) > FIT_ROWS:
        # Medians, means and category lists settle long before a million rows, and fitting
        # makes several copies of what it sees: a fixed sample of training rows keeps the
        # peak memory of large tables low. Still training rows only: no leakage.
        fit_rows = np.sort(np.random.default_rng(0).choice(train_rows, FIT_ROWS, replace=False))
    preprocessor.fit(data.features.iloc[fit_rows].copy())  # a private copy (see transform), freed after fitting
    X_train = transform(preprocessor, data.features, train_rows)
    X_eval = y_eval = None
    if eval_rows is not None:
        X_eval = transform(preprocessor, data.features, eval_rows)
        y_eval = data.y[eval_rows]
    difficulty = data.difficulty[train_rows] if data.difficulty is not None else None
    unlabeled = transform(preprocessor, data.unlabeled) if data.unlabeled is not None else None
    return EncodedSplit(X_train, data.y[train_rows], X_eval, y_eval, preprocessor, difficulty, unlabeled)


def shares_encoding(data: TabularData | ArrayData) -> bool:
    """Whether the search's folds read one encoding fitted on all training rows (see encode_folds):
    every kind but a time series (whose earlier folds must not see later statistics) and data
    with its own split (one fold, as given)."""
    return not getattr(data, "chronological", False) and getattr(data, "fixed_split", None) is None


def encode_folds(data: TabularData | ArrayData, train_rows: np.ndarray,
                 folds: list[tuple[np.ndarray, np.ndarray]]) -> tuple[object, list[EncodedSplit]]:
    """Fit the preprocessing once on all `train_rows` and cut each fold's (train, validation)
    pair out of that one encoding; returns the preprocessor and the folds.

    Only unsupervised statistics cross the folds this way (medians, scales, category lists, a
    vocabulary; never a target, never a test row), as in AutoGluon's bagging. What it buys:
    every fold model reads the same input as the delivered model, so the search's own
    validated fold models can be delivered as they are, without retraining them."""
    whole = encode_split(data, train_rows, None)
    position = row_positions(train_rows)
    splits = []
    for tr, va in folds:
        at_tr, at_va = position(tr), position(va)
        splits.append(EncodedSplit(
            whole.X_train[at_tr], whole.y_train[at_tr], whole.X_train[at_va], whole.y_train[at_va],
            whole.preprocessor, whole.difficulty[at_tr] if whole.difficulty is not None else None,
            whole.X_unlabeled))
    return whole.preprocessor, splits


def encode_with(data: TabularData | ArrayData, preprocessor: object, rows: np.ndarray) -> EncodedSplit:
    """`rows` as a training set through an already fitted preprocessor (that of encode_folds)."""
    unlabeled = getattr(data, "unlabeled", None)
    return EncodedSplit(transform(preprocessor, data.features, rows), data.y[rows], None, None, preprocessor,
                        data.difficulty[rows] if data.difficulty is not None else None,
                        transform(preprocessor, unlabeled) if unlabeled is not None else None)


def row_positions(train_rows: np.ndarray):
    """A function mapping rows of the table to their positions in `train_rows` (the order of
    an encoded training matrix)."""
    order = np.argsort(train_rows, kind="stable")
    ordered = train_rows[order]

    def position(rows: np.ndarray) -> np.ndarray:
        return order[np.searchsorted(ordered, rows)]
    return position


def _check_class_sizes(data: TabularData, minimum: int, purpose: str) -> None:
    if not data.is_classification:
        return
    counts = np.bincount(data.y, minlength=len(data.classes))
    for label, count in zip(data.classes, counts, strict=True):
        if count < minimum:
            raise DataError(
                f"class {label!r} of target '{data.target}' has {count} row(s); "
                f"{purpose} needs at least {minimum} per class"
            )
