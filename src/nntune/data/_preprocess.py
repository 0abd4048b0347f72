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


def make_preprocessor(schema: Schema) -> ColumnTransformer:
    """Impute and scale numeric columns; impute and one-hot encode categorical ones."""
    transformers = []
    if schema.numeric:
        transformers.append((
            "numeric",
            Pipeline([
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
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


def transform(preprocessor: ColumnTransformer, frame: pd.DataFrame) -> np.ndarray:
    """Apply a fitted preprocessor and return a C-contiguous float32 matrix."""
    return np.ascontiguousarray(preprocessor.transform(frame), dtype=np.float32)
