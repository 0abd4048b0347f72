"""Mixup in the fit loop: training batches only, reproducible, and a no-op at alpha 0."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from nntune.errors import ConfigError
from nntune.models import ModelMeta, build_model
from nntune.training import fit, get_metric, make_head
from nntune.training._trainer import Mixup

from .._references import at_least_linear
from .test_trainer import blobs, learned


class Recorder(nn.Module):
    """Wraps a network and keeps every input it sees, split by train and eval mode."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.seen: dict[bool, list[torch.Tensor]] = {True: [], False: []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen[self.training].append(x.detach().clone())
        return self.inner(x)


def run(recipe, task="binary", seed=0, record=False):
    X, y, Xv, yv = blobs()
    if task == "regression":
        y, yv = X[: len(y), 0] * 2.0 + X[: len(y), 1], Xv[:, 0] * 2.0 + Xv[:, 1]
    head = make_head(task, y, 2, recipe)
    torch.manual_seed(0)
    model = build_model("mlp", {"n_layers": 1, "units": 16}, ModelMeta(4, head.output_dim, task))
    model = Recorder(model) if record else model
    metric = get_metric("r2" if task == "regression" else "accuracy", task)
    result = fit(model, head, X, y, {"max_epochs": 30, "lr": 0.01, **recipe}, X_val=Xv, y_val=yv,
                 metric=metric, seed=seed)
    return model, result


def weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_alpha_zero_is_the_loop_without_mixup():
    plain, plain_result = run({}, seed=3)
    off, off_result = run({"mixup_alpha": 0.0}, seed=3)
    assert plain_result.history == off_result.history
    assert all(torch.equal(a, b) for a, b in zip(weights(plain), weights(off), strict=True))


@pytest.mark.parametrize("loss", ["cross_entropy", "bce"])
def test_mixup_still_learns_a_separable_problem(loss):
    _, result = run({"mixup_alpha": 0.4, "loss": loss, "label_smoothing": 0.05, "class_weight": "balanced"})
    learned(result)


def test_mixup_blends_regression_targets_and_still_learns():
    _, result = run({"mixup_alpha": 0.4}, task="regression")
    X, _, Xv, _ = blobs()
    y = X[:200, 0] * 2.0 + X[:200, 1]
    # Mixing blurs a linear target a little: within 0.2 R^2 of ridge regression (R^2 1.0 here).
    at_least_linear(result.best_score, X, y, Xv, Xv[:, 0] * 2.0 + Xv[:, 1], margin=0.2, task="regression")


def test_only_training_batches_are_mixed():
    X, _, Xv, _ = blobs()
    model, _ = run({"mixup_alpha": 1.0, "max_epochs": 3, "patience": 10}, record=True)
    evaluated = model.seen[False]
    assert evaluated and all(torch.equal(batch, torch.from_numpy(Xv)) for batch in evaluated)
    rows = {tuple(r) for r in X.tolist()}
    trained = torch.cat(model.seen[True])
    mixed = sum(tuple(r) not in rows for r in trained.tolist())
    assert mixed > 0.9 * len(trained)  # blended rows are (almost surely) none of the originals


def test_mixup_is_reproducible_by_seed():
    a, ra = run({"mixup_alpha": 0.4}, seed=5)
    b, rb = run({"mixup_alpha": 0.4}, seed=5)
    c, _ = run({"mixup_alpha": 0.4}, seed=6)
    assert ra.history == rb.history
    assert all(torch.equal(x, y) for x, y in zip(weights(a), weights(b), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(weights(a), weights(c), strict=True))


def test_classification_loss_is_the_blend_of_both_labels():
    torch.manual_seed(0)
    model = nn.Linear(3, 4)
    xb, yb = torch.randn(6, 3), torch.tensor([0, 1, 2, 3, 0, 1])
    lam = float(np.random.default_rng(11).beta(0.3, 0.3))
    loss = Mixup(0.3, blend_targets=False, seed=11).loss(model, nn.CrossEntropyLoss(), xb, yb)
    outputs = model(lam * xb + (1 - lam) * xb.roll(1, 0))
    expected = lam * F.cross_entropy(outputs, yb) + (1 - lam) * F.cross_entropy(outputs, yb.roll(1, 0))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_regression_targets_are_blended():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    xb, yb = torch.randn(5, 3), torch.randn(5)
    lam = float(np.random.default_rng(2).beta(0.5, 0.5))
    loss = Mixup(0.5, blend_targets=True, seed=2).loss(model, lambda o, t: F.mse_loss(o.reshape(-1), t), xb, yb)
    outputs = model(lam * xb + (1 - lam) * xb.roll(1, 0)).reshape(-1)
    assert loss.item() == pytest.approx(F.mse_loss(outputs, lam * yb + (1 - lam) * yb.roll(1, 0)).item(), rel=1e-6)


def test_negative_alpha_is_a_config_error():
    with pytest.raises(ConfigError, match="mixup_alpha must be >= 0"):
        run({"mixup_alpha": -0.1})
