"""Decide whether a target asks for binary or multiclass classification, or regression."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError, check_choice
from ._schema import check_numbers

TASKS = ("auto", "binary", "multiclass", "regression")
# A numeric target with more distinct values than this is read as a quantity, not a label.
MAX_CLASSES_FOR_NUMERIC = 20
# What to do with infinite targets: an empty target drops the row from a table, not from arrays.
TARGET_INSTEAD = "replace them with numbers, or drop those rows"


def detect_task(y: pd.Series, task: str = "auto") -> str:
    """Return 'binary', 'multiclass' or 'regression' for target `y` (or check the override)."""
    check_choice("task", task, TASKS)
    n_unique = y.nunique(dropna=True)
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    if task == "regression":
        if not numeric:
            bad = next(v for v in y if not _is_number(v))
            raise DataError(
                f"regression target '{y.name}' is not numeric (found value '{bad}'); "
                "use --task binary/multiclass for labels"
            )
        check_numbers(y.to_numpy(dtype=float, na_value=np.nan), f"regression target '{y.name}'", TARGET_INSTEAD)
        return task
    if task == "auto":
        if numeric:
            values = y.to_numpy(dtype=float, na_value=np.nan)
            # An infinity is no class label: such a target is a quantity (and refused below).
            integral = np.isfinite(values).all() and np.all(np.equal(np.mod(values, 1), 0))
            task = "regression" if (not integral or n_unique > MAX_CLASSES_FOR_NUMERIC) else "classify"
            if task == "regression":
                check_numbers(values, f"regression target '{y.name}'", TARGET_INSTEAD)
        else:
            task = "classify"
        if task == "classify":
            task = "binary" if n_unique == 2 else "multiclass"
    if task in ("binary", "multiclass"):
        if n_unique < 2:
            raise DataError(
                f"target '{y.name}' has only one class ({y.iloc[0]!r}); classification needs at least two"
            )
        if task == "binary" and n_unique != 2:
            raise DataError(f"task 'binary' needs exactly 2 classes; target '{y.name}' has {n_unique}")
    return task


def _is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True
