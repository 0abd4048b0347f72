"""What happens to a freshly built network before `fit`: pretrained weights (transfer),
autoencoder pretraining, and the curriculum; the same steps for every trial, fold and the final
model, so that the model a run saves was trained the way its trials were scored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ._augment import make_augment
from ._curriculum import make_curriculum
from ._pretrain import pretrain_encoder
from ._transfer import apply_pretrained


def prepare_fit(
    module: nn.Module,
    recipe: Mapping[str, Any],
    X_train: np.ndarray,
    y_train: np.ndarray,
    *,
    task: str,
    n_classes: int,
    epochs: int,
    device: torch.device | None = None,
    seed: int = 0,
    pretrained: Mapping[str, torch.Tensor] | None = None,
    X_unlabeled: np.ndarray | None = None,
    difficulty: np.ndarray | None = None,
    kind: str = "table",
    synonyms: Mapping[int, list[int]] | None = None,
) -> dict[str, Any]:
    """Apply the recipe's pretraining steps to `module` in place and return the keyword
    arguments they leave for `fit` (row_schedule, param_groups, frozen, augment).

    Order: the pretrained weights are loaded first (and the first `freeze_layers` frozen), then
    the autoencoder pretrains the layers still trainable on the training rows plus any unlabeled
    ones, then the curriculum orders the rows. `difficulty`: the rows' curriculum scores when
    known (a user column, or scores cached by the caller); computed here otherwise.
    """
    kwargs: dict[str, Any] = {}
    # A searched depth may go below a searched freeze_layers or to no hidden layer at all: such
    # a network freezes what it has and skips pretraining instead of failing the trial.
    hidden = getattr(module, "blocks", None)
    if pretrained is not None:
        freeze = int(recipe.get("freeze_layers", 0))
        transfer = apply_pretrained(module, pretrained, lr_scale=float(recipe.get("pretrained_lr_scale", 1.0)),
                                    freeze_layers=min(freeze, len(hidden)) if hidden is not None else freeze)
        kwargs.update(param_groups=transfer.param_groups, frozen=transfer.frozen)
    pretrain_epochs = int(recipe.get("pretrain_epochs", 0) or 0)
    if pretrain_epochs and (hidden is None or len(hidden)):
        rows = X_train if X_unlabeled is None else np.concatenate([X_train, X_unlabeled])
        pretrain_encoder(module, rows, dict(recipe), epochs=pretrain_epochs,
                         loss=str(recipe.get("pretrain_loss", "mse")),
                         noise=float(recipe.get("pretrain_noise", 0.0)), device=device, seed=seed)
    curriculum = make_curriculum(recipe, X_train, y_train, task, n_classes, epochs, seed=seed, device=device,
                                 difficulty=difficulty)
    if curriculum is not None:
        kwargs["row_schedule"] = curriculum
    augment = make_augment(recipe, kind, seed=seed, synonyms=synonyms)
    if augment is not None:
        kwargs["augment"] = augment
    return kwargs
