"""Knowledge distillation: a narrower student MLP learns the teacher's softened outputs.

The loss is alpha * T^2 * soft + (1 - alpha) * hard: `soft` compares the student's and the
teacher's outputs at temperature T (KL divergence of the softmax, or of the sigmoid for a
one-output binary head), `hard` is the run's own loss on the true labels. T^2 keeps the soft
term's gradients on the scale of the hard one. The student is trained with nntune's own loop
and the run's recipe, except dropout: by default the student has none, as in Hinton et al.
(2015), where the soft targets alone regularize the small net. The teacher's dropout was
tuned for its width: on digits, a narrow student kept at the teacher's 0.5 learned worse and
less stably with the teacher than without (docs/compression.md). `student_dropout` sets it.
With alpha 0 the soft term weighs nothing and the same student learns from the labels alone:
the no-teacher control.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..models import ModelMeta
from ..models.mlp import PLAIN, layer_widths
from ..search import make_module
from ..training import Head, fit, predict_outputs
from ._run import RunData

DEFAULT_SHARE = 0.5  # student width as a share of the teacher's widest layer


@dataclass
class DistillHead(Head):
    """The run's head with a distillation loss; targets are [teacher outputs..., label]."""

    temperature: float = 4.0
    alpha: float = 0.7

    def targets(self, y: np.ndarray, device: torch.device) -> torch.Tensor:
        return torch.from_numpy(y.astype(np.float32)).to(device)

    def loss_fn(self, device: torch.device) -> nn.Module:
        hard = Head(self.task, self.loss, self.n_classes, label_smoothing=self.label_smoothing,
                    class_weights=self.class_weights).loss_fn(device)
        return _DistillLoss(hard, self.loss == "bce", self.temperature, self.alpha)


class _DistillLoss(nn.Module):
    def __init__(self, hard: nn.Module, binary: bool, temperature: float, alpha: float) -> None:
        super().__init__()
        self.hard, self.binary, self.t, self.alpha = hard, binary, temperature, alpha

    def forward(self, outputs: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
        teacher, labels = packed[:, :-1], packed[:, -1]
        t = self.t
        if self.binary:
            soft = F.binary_cross_entropy_with_logits(outputs / t, torch.sigmoid(teacher / t))
            hard = self.hard(outputs, labels)
        else:
            soft = F.kl_div(F.log_softmax(outputs / t, dim=1), F.log_softmax(teacher / t, dim=1),
                            reduction="batchmean", log_target=True)
            hard = self.hard(outputs, labels.long())
        return self.alpha * t * t * soft + (1.0 - self.alpha) * hard


def student_units(params: dict[str, Any], output_dim: int, units: int | float | None) -> int:
    """The student's width: given as a count, as a share in (0, 1), or half the teacher's."""
    teacher = max(layer_widths(params, output_dim) or [0])
    if teacher == 0:
        raise ConfigError("distillation narrows the hidden layers; the teacher has none (n_layers 0)")
    if units is None:
        units = DEFAULT_SHARE
    if isinstance(units, float) and 0 < units < 1:
        units = max(1, round(teacher * units))
    if int(units) != units or not 1 <= units < teacher:
        raise ConfigError(f"student_units must be a width from 1 to {teacher - 1} (below the teacher's "
                          f"{teacher}) or a share in (0, 1); got {units}")
    return int(units)


def distill(run: RunData, units: int | float | None = None, temperature: float = 4.0, alpha: float = 0.7,
            epochs: int | None = None, dropout: float = 0.0) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """Train the student; returns (module, params that rebuild it, details)."""
    if run.model.task == "regression":
        raise ConfigError("distill needs a classification model (it learns softened class "
                          "probabilities); this run does regression: use prune or quantize")
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0; got {temperature}")
    if not 0 <= alpha <= 1:
        raise ConfigError(f"alpha must be in [0, 1] (the soft loss's weight); got {alpha}")
    if not 0 <= dropout < 1:
        raise ConfigError(f"student_dropout must be in [0, 1); got {dropout}")
    run.require_mlp("distill")
    head = run.model.head
    params = {k: v for k, v in run.params.items() if not k.startswith("units_")}
    width = student_units(run.params, head.output_dim, units)
    params = {**params, **PLAIN, "units": width, "dropout": float(dropout)}  # a plain student
    torch.manual_seed(run.seed)
    meta = ModelMeta(int(run.model.info["input_dim"]), head.output_dim, head.task)
    student, params = make_module("mlp", params, meta)
    teacher = predict_outputs(run.model.module.cpu(), torch.from_numpy(run.X_train)).numpy()
    packed = np.concatenate([teacher.reshape(len(teacher), -1), run.y_train.reshape(-1, 1)], axis=1)
    trainer_head = DistillHead(**head.to_json(), temperature=float(temperature), alpha=float(alpha))
    epochs = epochs or run.epochs
    fit(student, trainer_head, run.X_train, packed, params, epochs=epochs, seed=run.seed)
    return student.eval(), params, {"student_units": width, "student_dropout": dropout, "epochs": epochs,
                                    "temperature": temperature,
                                    "alpha": alpha, "teacher_widths": layer_widths(run.params, head.output_dim)}
