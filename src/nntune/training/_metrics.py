"""Scoring functions, their direction, and which tasks they apply to.

Every metric takes the true targets and the model's scores: class probabilities of shape
(n, n_classes) for classification, predicted values for regression.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from ..errors import ConfigError, check_choice

CLASSIFICATION = ("binary", "multiclass")


@dataclass(frozen=True)
class Metric:
    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    direction: str  # 'maximize' | 'minimize'
    tasks: tuple[str, ...]

    def __call__(self, y_true: np.ndarray, scores: np.ndarray) -> float:
        return float(self.fn(y_true, scores))

    def better(self, a: float, b: float, min_delta: float = 0.0) -> bool:
        """True when score `a` improves on `b` by more than `min_delta`."""
        return a > b + min_delta if self.direction == "maximize" else a < b - min_delta


def _labels(scores: np.ndarray) -> np.ndarray:
    return scores.argmax(axis=1)


def _f1(y: np.ndarray, p: np.ndarray) -> float:
    average = "binary" if p.shape[1] == 2 else "macro"
    return skm.f1_score(y, _labels(p), average=average, zero_division=0)


def _roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    if len(np.unique(y)) < 2:
        return float("nan")
    if p.shape[1] == 2:
        return skm.roc_auc_score(y, p[:, 1])
    return skm.roc_auc_score(y, p, multi_class="ovr", labels=np.arange(p.shape[1]))


# Accuracy, log loss and the regression metrics are scored after every epoch of every trial;
# scikit-learn's input validation made each call cost milliseconds (a tenth of a small table's
# tuning time), so these few are plain NumPy (tests/training check them against scikit-learn).

def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(_labels(p) == np.asarray(y)))


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    picked = np.clip(p[np.arange(len(p)), np.asarray(y, dtype=np.int64)], 1e-15, 1.0)
    return float(-np.mean(np.log(picked)))


def _columns(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Targets and predictions as (n, outputs) float arrays (a forecast horizon is outputs)."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    y = y.reshape(len(y), -1)
    return y, p.reshape(y.shape)


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    """R^2 per output, averaged over outputs (scikit-learn's `uniform_average`)."""
    y, p = _columns(y, p)
    residual, total = ((y - p) ** 2).sum(axis=0), ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    constant = total == 0.0  # a constant target: 1 if predicted exactly, else 0, as scikit-learn
    scores = np.where(constant, (residual == 0.0).astype(float), 1.0 - residual / np.where(constant, 1.0, total))
    return float(scores.mean())


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    y, p = _columns(y, p)
    return float(np.sqrt(((y - p) ** 2).mean(axis=0)).mean())


def _mae(y: np.ndarray, p: np.ndarray) -> float:
    y, p = _columns(y, p)
    return float(np.abs(y - p).mean(axis=0).mean())


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("accuracy", _accuracy, "maximize", CLASSIFICATION),
    Metric("balanced_accuracy", lambda y, p: skm.balanced_accuracy_score(y, _labels(p)),
           "maximize", CLASSIFICATION),
    Metric("f1", _f1, "maximize", CLASSIFICATION),
    Metric("roc_auc", _roc_auc, "maximize", CLASSIFICATION),
    Metric("log_loss", _log_loss, "minimize", CLASSIFICATION),
    Metric("r2", _r2, "maximize", ("regression",)),
    Metric("rmse", _rmse, "minimize", ("regression",)),
    Metric("mae", _mae, "minimize", ("regression",)),
)}


def default_metric(task: str) -> str:
    return "r2" if task == "regression" else "accuracy"


def get_metric(name: str, task: str) -> Metric:
    """Resolve a metric name for a task, with errors that say what the task accepts."""
    check_choice("metric", name, METRICS)
    metric = METRICS[name]
    if task not in metric.tasks:
        accepted = [m.name for m in METRICS.values() if task in m.tasks]
        raise ConfigError(
            f"metric '{name}' does not apply to a {task} task; accepted: {', '.join(accepted)}"
        )
    return metric


def score_all(task: str, y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Every metric that applies to `task`, as a name -> value map (the test report)."""
    return {m.name: m(y_true, scores) for m in METRICS.values() if task in m.tasks}
