"""The scikit-learn preprocessing every tabular model gets, fitted on training rows only."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from ..errors import check_choice
from ._schema import Schema

# Rare categories share one column so a high-cardinality column cannot blow up the input width.
MAX_CATEGORIES = 32
CHUNK_ROWS = 65536
# How numeric columns are scaled: standard (mean and standard deviation) or robust (median and
# quantiles, then a smooth clip; RealMLP's, Holzmueller et al. 2024). Robust is the default:
# a heavy tail or a few outliers no longer squeeze every other value into a narrow band.
SCALINGS = ("standard", "robust")
DEFAULT_SCALING = "robust"


class RobustScaleSmoothClip(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Centre each column on its median, divide by its interquartile range, then clip smoothly:
    x / sqrt(1 + (x / clip)^2), which keeps the middle nearly linear and bends values towards
    +-clip (RealMLP's robust scaling and smooth clipping).

    A column whose quartiles coincide (mostly one value, e.g. a rare flag) is scaled by half its
    range instead, so its few other values stay visible; a constant column becomes 0. Fitted on
    the rows it is given (nntune gives it training rows only).
    """

    def __init__(self, clip: float = 3.0, copy: bool = True) -> None:
        self.clip = clip
        self.copy = copy

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite=True)
        self.center_ = np.median(X, axis=0)
        q25, q75 = np.quantile(X, [0.25, 0.75], axis=0)
        spread = q75 - q25
        flat = spread == 0
        spread[flat] = 0.5 * (X.max(axis=0) - X.min(axis=0))[flat]
        # A constant column gets factor 0: whatever it holds later, it stays at the centre.
        self.factor_ = np.divide(1.0, spread, out=np.zeros_like(spread), where=spread > 0)
        return self

    def transform(self, X):
        check_is_fitted(self, "factor_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], copy=self.copy, reset=False,
                          ensure_all_finite=True)
        X -= self.center_.astype(X.dtype)
        X *= self.factor_.astype(X.dtype)
        X /= np.sqrt(1.0 + np.square(X / self.clip))
        return X


def make_scaler(scaling: str) -> StandardScaler | RobustScaleSmoothClip:
    check_choice("scaling", scaling, SCALINGS)
    # In place: the scaler only ever sees a private copy of the rows (see transform).
    return StandardScaler(copy=False) if scaling == "standard" else RobustScaleSmoothClip(copy=False)


def make_preprocessor(schema: Schema, scaling: str = DEFAULT_SCALING) -> ColumnTransformer:
    """Impute and scale numeric columns (`scaling`: standard or robust, see SCALINGS); impute
    and one-hot encode categorical ones. The numeric columns come first in the output."""
    transformers = []
    if schema.numeric:
        transformers.append((
            "numeric",
            Pipeline([
                # In place: both only ever see a private copy of the rows (see transform).
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True, copy=False)),
                ("scale", make_scaler(scaling)),
            ]),
            schema.numeric,
        ))
    if schema.categorical:
        transformers.append((
            "categorical",
            Pipeline([
                ("impute", SimpleImputer(strategy="most_frequent", keep_empty_features=True)),
                ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist",
                                         max_categories=MAX_CATEGORIES, sparse_output=False,
                                         dtype=np.float32)),
            ]),
            schema.categorical,
        ))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)


def numeric_width(preprocessor: object) -> int:
    """How many of a fitted preprocessor's first output columns are numeric (the block that
    numerical embeddings transform; the one-hot columns follow it)."""
    indices = getattr(preprocessor, "output_indices_", None)
    if indices is None or "numeric" not in indices:
        return 0
    block = indices["numeric"]
    if block.start != 0:  # make_preprocessor lists the numeric block first; a model relies on it
        raise ValueError(f"the numeric columns start at column {block.start}, not 0")
    return int(block.stop)


def transform(preprocessor: ColumnTransformer, frame: pd.DataFrame,
              rows: np.ndarray | None = None) -> np.ndarray:
    """Apply a fitted preprocessor to `rows` of `frame` (all rows by default), in chunks.

    Chunks keep the peak memory of a large table near the size of the float32 result, and
    each chunk is a private copy of the rows, so in-place steps never touch the caller's data.
    """
    if hasattr(preprocessor, "model_input"):  # an Encoder of samples that are not table rows
        return preprocessor.transform(frame if rows is None else frame[np.asarray(rows)])
    rows = np.arange(len(frame)) if rows is None else np.asarray(rows)
    out: np.ndarray | None = None
    for start in range(0, max(1, len(rows)), CHUNK_ROWS):
        # An explicit copy: pandas may hand back a view for an indexer it sees as a slice (all
        # rows in order, as predict passes them), and the in-place steps then overwrote the
        # caller's frame with scaled values.
        part = preprocessor.transform(frame.iloc[rows[start:start + CHUNK_ROWS]].copy())
        if out is None:
            out = np.empty((len(rows), part.shape[1]), dtype=np.float32)
        out[start:start + len(part)] = part
    return out
