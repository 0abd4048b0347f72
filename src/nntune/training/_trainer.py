"""The training loop: in-memory tensors sliced by a shuffled index, one callback per epoch.

Written for speed on data that fits in memory: no DataLoader, no per-sample Python, no host
sync per step. The loop knows nothing about the search; `on_epoch_end` may raise to stop it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
import torch._dynamo  # noqa: F401  (every optimizer imports it on first use, over a second:
from torch import nn  # paid here, at import, so no trial's time budget pays for it)

from ..errors import ConfigError, TrialFailed
from ..models._tabular_blocks import MemberLoss
from ._heads import Head
from ._metrics import Metric
from ._recipe import DEFAULTS, Schedule, make_optimizer

EVAL_CHUNK = 16384
# Below this many bytes the whole training set is permuted once per epoch and sliced into
# contiguous views; above it, each batch gathers its rows so no second copy is made.
PERMUTE_WHOLE_BYTES = 64 * 2**20


class TrainingDiverged(TrialFailed):
    """The loss became NaN or infinite."""


@dataclass
class FitResult:
    history: dict[str, list[float]] = field(default_factory=lambda: {
        "train_loss": [], "val_loss": [], "val_score": []})
    best_epoch: int = 0
    best_score: float = float("nan")
    epochs_run: int = 0
    stop_reason: str = "max_epochs"
    seconds: float = 0.0


EpochCallback = Callable[[int, dict[str, float]], None]


class RowSchedule(Protocol):
    """Which training rows an epoch uses (a curriculum): `rows(epoch)` returns their indices,
    the same for the same epoch, or None for all rows. The trainer shuffles them."""

    def rows(self, epoch: int) -> np.ndarray | None: ...




def fit(
    model: nn.Module,
    head: Head,
    X_train: np.ndarray,
    y_train: np.ndarray,
    recipe: dict,
    *,
    X_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    metric: Metric | None = None,
    epochs: int | None = None,
    horizon: int | None = None,
    on_epoch_end: EpochCallback | None = None,
    deadline: float | None = None,
    device: torch.device | None = None,
    seed: int = 0,
    row_schedule: RowSchedule | None = None,
    param_groups: Sequence[dict] | None = None,
    frozen: Sequence[nn.Module] = (),
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> FitResult:
    """Train `model` in place and return its per-epoch history.

    With validation data the loop scores `metric` each epoch, stops early after `patience`
    epochs without improvement, and restores the best weights. Without it, it trains for exactly
    `epochs` epochs and keeps the last (the final retrain: the count was chosen on validation
    data). `horizon` (default `epochs`) is the epochs the learning-rate schedule spans: a refit
    stopped at a trial's chosen epoch follows the trial's schedule, not one squeezed into fewer
    epochs. `deadline` (time.monotonic) ends training early, with
    stop_reason 'time'. `row_schedule` restricts the rows of each epoch (a curriculum);
    `param_groups` ({"params": [...], "lr_scale": s} each) scales the learning rate per group of
    parameters (default: one group of all parameters that require gradients); `frozen` modules
    stay in eval mode while the rest trains, so their batch-norm statistics do not move either.
    `augment` transforms each training batch's inputs on the device (never a validation batch).
    """
    recipe = {**DEFAULTS, **recipe}
    device = device or torch.device("cpu")
    model.to(device)
    validate = X_val is not None and metric is not None
    epochs = int(epochs or recipe["max_epochs"])
    horizon = max(epochs, int(horizon or epochs))
    X = torch.from_numpy(X_train).to(device)
    Y = head.targets(y_train, device)
    Xv = torch.from_numpy(X_val).to(device) if validate else None
    Yv = head.targets(y_val, device) if validate else None
    n = len(X)
    batch_size = max(1, min(int(recipe["batch_size"]), n))
    steps = [_steps(size, batch_size) for size in _epoch_sizes(row_schedule, horizon, n)]

    loss_fn = MemberLoss.around(head.loss_fn(device), model)  # TabM: each member's own loss
    groups = param_groups if param_groups is not None else [
        {"params": [p for p in model.parameters() if p.requires_grad], "lr_scale": 1.0}]
    optimizer = make_optimizer(groups, recipe, device)
    schedule = Schedule(optimizer, recipe, horizon, steps[0], total_steps=sum(steps))
    penalised = [p for p in model.parameters() if p.dim() > 1 and p.requires_grad]
    l1, l2 = float(recipe["l1"]), float(recipe["l2"])
    clip_norm, clip_value = recipe["clip_norm"], recipe["clip_value"]
    generator = torch.Generator(device="cpu").manual_seed(seed)
    # Blending token ids or node numbers means nothing: mixup applies to float inputs only.
    mixup = Mixup.of(recipe, head, seed) if X.is_floating_point() else None
    whole = X.element_size() * X.numel() <= PERMUTE_WHOLE_BYTES

    result = FitResult()
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs, patience = 0, int(recipe["patience"])
    min_delta = float(recipe["min_delta"])
    started = time.monotonic()
    for epoch in range(1, epochs + 1):
        model.train()
        for module in frozen:
            module.eval()
        rows, steps_per_epoch = _rows_on(row_schedule, epoch, device), steps[epoch - 1]
        if rows is None:
            perm = torch.randperm(n, generator=generator).to(device)
        else:
            perm = rows[torch.randperm(len(rows), generator=generator).to(device)]
        Xs, Ys = (X[perm], Y[perm]) if whole else (X, Y)
        total = torch.zeros((), device=device)
        for step in range(steps_per_epoch):
            lo = step * batch_size
            if whole:
                xb, yb = Xs[lo:lo + batch_size], Ys[lo:lo + batch_size]
            else:
                idx = perm[lo:lo + batch_size]
                xb, yb = X[idx], Y[idx]
            if augment is not None:
                xb = augment(xb)
            loss = loss_fn(model(xb), yb) if mixup is None else mixup.loss(model, loss_fn, xb, yb)
            if l1:
                loss = loss + l1 * sum(p.abs().sum() for p in penalised)
            if l2:
                loss = loss + l2 * sum(p.pow(2).sum() for p in penalised)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_norm:
                nn.utils.clip_grad_norm_(model.parameters(), float(clip_norm))
            if clip_value:
                nn.utils.clip_grad_value_(model.parameters(), float(clip_value))
            optimizer.step()
            schedule.step_batch()
            total += loss.detach()
            if deadline is not None and time.monotonic() > deadline:
                break
        del Xs, Ys
        train_loss = float(total) / max(1, steps_per_epoch)
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"training loss became {train_loss} in epoch {epoch}")
        result.epochs_run = epoch
        result.history["train_loss"].append(train_loss)
        logs = {"train_loss": train_loss}
        monitored = train_loss
        if validate:
            outputs = predict_outputs(model, Xv)
            val_loss = float(loss_fn(outputs, Yv))
            score = metric(y_val, head.scores(outputs))
            if not math.isfinite(score):
                raise TrainingDiverged(f"validation {metric.name} became {score} in epoch {epoch}")
            result.history["val_loss"].append(val_loss)
            result.history["val_score"].append(score)
            logs.update(val_loss=val_loss, val_score=score)
            monitored = val_loss
            # A discrete metric (accuracy on a small validation set) ties often, and the later
            # of two tied epochs has the lower training loss and generalises better more often
            # than not, so a tie moves the best epoch forward instead of ending training.
            if result.best_epoch == 0 or metric.better(score, result.best_score, min_delta) \
                    or score == result.best_score:
                result.best_epoch, result.best_score, bad_epochs = epoch, score, 0
                if recipe["restore_best"]:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
        else:
            result.best_epoch = epoch  # no validation data: the last epoch is the one asked for
        schedule.step_epoch(monitored)
        if on_epoch_end is not None:
            on_epoch_end(epoch, logs)
        if rows is not None:
            # A curriculum is still adding rows: patience counts from the first epoch on all of
            # them, or a slow start would stop training before the hard rows were ever seen.
            bad_epochs = 0
        if validate and bad_epochs >= patience:
            result.stop_reason = "early_stopping"
            break
        if deadline is not None and time.monotonic() > deadline:
            result.stop_reason = "time"
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    result.seconds = time.monotonic() - started
    model.eval()
    return result


def _steps(rows: int, batch_size: int) -> int:
    """Batches per epoch; a final batch of one row breaks batch norm and adds noise: dropped."""
    steps = math.ceil(rows / batch_size)
    return steps - 1 if rows % batch_size == 1 and rows > 1 else steps


def _epoch_sizes(schedule: RowSchedule | None, epochs: int, n: int) -> list[int]:
    """Rows per epoch, read up front so the learning-rate schedule knows the total number of
    steps (the indices themselves go to the device one epoch at a time)."""
    if schedule is None:
        return [n] * epochs
    return [n if rows is None else len(rows) for rows in map(schedule.rows, range(1, epochs + 1))]


def _rows_on(schedule: RowSchedule | None, epoch: int, device: torch.device) -> torch.Tensor | None:
    rows = schedule.rows(epoch) if schedule is not None else None
    return None if rows is None else torch.as_tensor(np.asarray(rows), dtype=torch.long, device=device)


class Mixup:
    """Mixup for tables: each training batch is blended with a shuffled copy of itself by a
    weight lam ~ Beta(alpha, alpha), drawn once per batch. Classification blends the two losses
    (so cross entropy with smoothing or class weights and BCE work unchanged); regression blends
    the standardized targets. Validation batches are never mixed: the trainer calls this only
    on training steps."""

    def __init__(self, alpha: float, blend_targets: bool, seed: int) -> None:
        self.alpha = alpha
        self.blend_targets = blend_targets
        # torch's Beta sampler takes no generator; a numpy one seeded from the fit's seed keeps
        # runs reproducible and leaves every torch random stream as it was without mixup.
        self.rng = np.random.default_rng(seed)

    @classmethod
    def of(cls, recipe: dict, head: Head, seed: int) -> Mixup | None:
        """The recipe's mixup, or None when `mixup_alpha` is 0 (the loop then runs as without it)."""
        alpha = float(recipe["mixup_alpha"] or 0.0)
        if not alpha >= 0:
            raise ConfigError(f"mixup_alpha must be >= 0 (0 switches mixup off); got {recipe['mixup_alpha']}")
        return cls(alpha, head.task == "regression", seed) if alpha > 0 else None

    def loss(self, model: nn.Module, loss_fn: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        lam = float(self.rng.beta(self.alpha, self.alpha))
        # The batch's rows are already in random order (a fresh permutation every epoch), so
        # rolling it by one row pairs each row with a random other one, without another draw.
        xp, yp = xb.roll(1, 0), yb.roll(1, 0)
        outputs = model(lam * xb + (1.0 - lam) * xp)
        if self.blend_targets:
            return loss_fn(outputs, lam * yb + (1.0 - lam) * yp)
        return lam * loss_fn(outputs, yb) + (1.0 - lam) * loss_fn(outputs, yp)


@torch.no_grad()
def predict_outputs(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """Raw outputs for `X` in eval mode, in chunks so large tables do not spike memory."""
    model.eval()
    if len(X) <= EVAL_CHUNK:
        return model(X)
    return torch.cat([model(X[i:i + EVAL_CHUNK]) for i in range(0, len(X), EVAL_CHUNK)])
