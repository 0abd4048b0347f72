"""How a task maps to network outputs, a loss, and predictions.

The head is plain data (saved with the model as JSON) so that a loaded model turns raw outputs
into probabilities or values exactly as the trained one did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError, check_choice

LOSSES = ("auto", "cross_entropy", "bce", "mse", "mae", "huber")
CLASS_WEIGHTS = ("none", "balanced")


@dataclass
class Head:
    task: str
    loss: str
    n_classes: int = 0
    y_mean: float = 0.0
    y_std: float = 1.0
    label_smoothing: float = 0.0
    class_weights: list[float] = field(default_factory=list)

    @property
    def output_dim(self) -> int:
        if self.task == "regression" or self.loss == "bce":
            return 1
        return self.n_classes

    def targets(self, y: np.ndarray, device: torch.device) -> torch.Tensor:
        """Training targets on `device`: class codes, 0/1 floats for BCE, standardized values."""
        if self.task == "regression":
            return torch.from_numpy(((y - self.y_mean) / self.y_std).astype(np.float32)).to(device)
        if self.loss == "bce":
            return torch.from_numpy(y.astype(np.float32)).to(device)
        return torch.from_numpy(y.astype(np.int64)).to(device)

    def loss_fn(self, device: torch.device) -> nn.Module:
        weights = torch.tensor(self.class_weights, dtype=torch.float32, device=device) \
            if self.class_weights else None
        if self.task == "regression":
            return _Flat({"mse": nn.MSELoss(), "mae": nn.L1Loss(), "huber": nn.HuberLoss()}[self.loss])
        if self.loss == "bce":
            pos_weight = weights[1] / weights[0] if weights is not None else None
            return _SqueezedBCE(pos_weight, self.label_smoothing)
        return nn.CrossEntropyLoss(weight=weights, label_smoothing=self.label_smoothing)

    def scores(self, outputs: torch.Tensor) -> np.ndarray:
        """Class probabilities (n, n_classes) or predicted values (n,) in the target's units."""
        outputs = outputs.detach().float().cpu()
        if self.task == "regression":
            return outputs.reshape(-1).numpy().astype(np.float64) * self.y_std + self.y_mean
        if self.loss == "bce":
            p = torch.sigmoid(outputs.reshape(-1)).numpy().astype(np.float64)
            return np.stack([1.0 - p, p], axis=1)
        return F.softmax(outputs, dim=1).numpy().astype(np.float64)

    def to_json(self) -> dict:
        return asdict(self)


class _Flat(nn.Module):
    """A loss on one output column: (n, 1) outputs against (n,) targets."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(outputs.reshape(-1), target)


class _SqueezedBCE(nn.Module):
    def __init__(self, pos_weight: torch.Tensor | None, label_smoothing: float) -> None:
        super().__init__()
        self.loss = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        self.smoothing = label_smoothing

    def forward(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.smoothing:
            target = target * (1 - self.smoothing) + 0.5 * self.smoothing
        return self.loss(outputs.reshape(-1), target)


def make_head(task: str, y_train: np.ndarray, n_classes: int, recipe: dict) -> Head:
    """Choose the loss for `task` (or check the recipe's) and fit target scaling on training rows."""
    loss = check_choice("loss", recipe.get("loss", "auto"), LOSSES)
    weighting = check_choice("class_weight", recipe.get("class_weight", "none"), CLASS_WEIGHTS)
    if task == "regression":
        loss = "mse" if loss == "auto" else loss
        if loss not in ("mse", "mae", "huber"):
            raise ConfigError(f"loss '{loss}' does not fit a regression task; accepted: mse, mae, huber")
        std = float(np.std(y_train)) or 1.0
        return Head(task, loss, y_mean=float(np.mean(y_train)), y_std=std)
    loss = "cross_entropy" if loss == "auto" else loss
    if loss not in ("cross_entropy", "bce"):
        raise ConfigError(f"loss '{loss}' does not fit a {task} task; accepted: cross_entropy, bce")
    if loss == "bce" and n_classes != 2:
        raise ConfigError(f"loss 'bce' needs a binary task; this one has {n_classes} classes")
    weights: list[float] = []
    if weighting == "balanced":
        counts = np.bincount(y_train, minlength=n_classes).astype(np.float64)
        weights = (len(y_train) / (n_classes * np.maximum(counts, 1))).tolist()
    return Head(task, loss, n_classes=n_classes,
                label_smoothing=float(recipe.get("label_smoothing", 0.0)), class_weights=weights)
