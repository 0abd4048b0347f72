"""The scikit-learn preprocessing every tabular model gets, fitted on training rows only."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ._schema import Schema

# Rare categories share one column so a high-cardinality column cannot blow up the input width.
MAX_CATEGORIES = 32
CHUNK_ROWS = 65536


def make_preprocessor(schema: Schema) -> ColumnTransformer:
    """Impute and scale numeric columns; impute and one-hot encode categorical ones."""
    transformers = []
    if schema.numeric:
        transformers.append((
            "numeric",
            Pipeline([
                # In place: both only ever see a private copy of the rows (see transform_rows).
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True, copy=False)),
                ("scale", StandardScaler(copy=False)),
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
        part = preprocessor.transform(frame.iloc[rows[start:start + CHUNK_ROWS]])
        if out is None:
            out = np.empty((len(rows), part.shape[1]), dtype=np.float32)
        out[start:start + len(part)] = part
    return out
