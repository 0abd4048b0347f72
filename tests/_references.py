"""References a test compares a trained network with, on the same rows: a linear model and the
majority class (or the mean, for regression). A result is judged against these, never against a
bare number, so a test fails when the network is bad, not only when it crashes."""

from __future__ import annotations

import numpy as np


def linear_score(X_train, y_train, X_eval, y_eval, task: str = "classification") -> float:
    """Accuracy of logistic regression (R^2 of ridge regression for regression) on the eval rows."""
    X_train, X_eval = _flat(X_train), _flat(X_eval)
    if task == "regression":
        from sklearn.linear_model import Ridge

        return float(Ridge().fit(X_train, y_train).score(X_eval, y_eval))
    from sklearn.linear_model import LogisticRegression

    return float(LogisticRegression(max_iter=2000).fit(X_train, y_train).score(X_eval, y_eval))


def majority_score(y_train, y_eval) -> float:
    """Accuracy on the eval rows of always predicting the training rows' most common class."""
    values, counts = np.unique(np.asarray(y_train), return_counts=True)
    return float(np.mean(np.asarray(y_eval) == values[np.argmax(counts)]))


def at_least_linear(score: float, X_train, y_train, X_eval, y_eval, margin: float = 0.05,
                    task: str = "classification") -> None:
    """Assert that `score` is within `margin` of the linear model and clearly above the majority
    class (classification) or the mean (regression, R^2 0) on the same split."""
    linear = linear_score(X_train, y_train, X_eval, y_eval, task)
    floor = 0.0 if task == "regression" else majority_score(y_train, y_eval)
    assert score >= linear - margin, f"{score:.3f} is more than {margin} below the linear model's {linear:.3f}"
    assert score > floor + 0.1, f"{score:.3f} is not clearly above the constant prediction's {floor:.3f}"


def _flat(X):
    X = np.asarray(X)
    return X.reshape(len(X), -1)


def run_references(run_dir, data=None) -> dict[str, float]:
    """The linear model's and the constant prediction's test score (accuracy, or R^2 for a
    regression run) on a finished run's own train/test rows, encoded as its model encodes them."""
    from pathlib import Path

    from nntune.api import _run_arrays

    rows = _run_arrays(Path(run_dir), data, None, "test")
    task = "regression" if rows["metric"] in ("r2", "rmse", "mae", "mse") else "classification"
    linear = linear_score(rows["X_train"], rows["y_train"], rows["X_test"], rows["y_test"], task)
    constant = 0.0 if task == "regression" else majority_score(rows["y_train"], rows["y_test"])
    return {"linear": linear, "constant": constant}


def assert_run_learned(score: float, run_dir, data=None, margin: float = 0.05) -> None:
    """A run's test score is within `margin` of a linear model's on the same split and clearly
    above the constant prediction's: a network that learned little fails, not only one that crashed."""
    reference = run_references(run_dir, data)
    assert score >= reference["linear"] - margin, (score, reference)
    assert score >= reference["constant"] + 2 * margin, (score, reference)


def contention() -> float:
    """How many runnable processes share each core now (at least 1): a wall-clock bound in a test
    is scaled by it, so that it holds on a loaded machine and stays tight on an idle one."""
    import os

    return max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
