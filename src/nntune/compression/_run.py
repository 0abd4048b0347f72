"""What every compression method starts from: the saved model and the run's encoded rows,
and how a model is measured (parameters, bytes on disk, latency, test score)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..predictor import FILES, Predictor
from ..search._objective import latency_ms
from ..training import predict_outputs, score_all


@dataclass
class RunData:
    """The tuned model and the run's rows, encoded by the model's own preprocessor.

    The API builds it from a run directory (the same plan `report` and `ablate` use);
    compression never touches the study itself.
    """

    model: Predictor
    model_dir: Path
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    metric: str
    seed: int = 0

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model.info["params"])

    @property
    def epochs(self) -> int:
        return int(self.model.info.get("epochs") or self.params.get("max_epochs", 10))

    def require_mlp(self, method: str) -> None:
        family = self.model.info.get("family")
        if family != "mlp":
            raise ConfigError(f"{method} works on the mlp family; this run's model is '{family}'")
        members = int(self.params.get("k", 1))
        if members > 1 and method != "distill":  # distill trains a plain student from any mlp
            raise ConfigError(f"{method} works on one network; this model averages {members} TabM members: "
                              f"distill it into one (--method distill), then {method} that")


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_nonzero(module: nn.Module) -> int:
    return sum(int(torch.count_nonzero(p)) for p in module.parameters())


def test_scores(module: nn.Module, run: RunData) -> dict[str, float]:
    outputs = predict_outputs(module, torch.from_numpy(run.X_test))
    return score_all(run.model.task, run.y_test, run.model.head.scores(outputs))


def measure(module: nn.Module, model_dir: Path, run: RunData, params: int | None = None) -> dict[str, Any]:
    """One side of the comparison. `params` overrides the count for modules whose weights are
    not parameters any more (dynamic int8 Linear layers keep theirs as packed buffers)."""
    scores = test_scores(module, run)
    # One thread: on a small batch extra threads mostly wait for each other, and on a busy
    # machine a descheduled one turns a 0.1 ms call into tens of ms; one thread is steady.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        latency = latency_ms(module, run.X_test, torch.device("cpu"), repeats=25)
    finally:
        torch.set_num_threads(threads)
    return {
        "params": count_params(module) if params is None else params,
        "nonzero": count_nonzero(module) if params is None else params,
        "size_bytes": (model_dir / FILES["weights"]).stat().st_size,
        "latency_ms": round(latency, 4),
        "score": scores.get(run.metric), "metric": run.metric, "test_scores": scores,
    }
