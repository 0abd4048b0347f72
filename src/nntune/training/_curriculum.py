"""Curriculum learning: each epoch trains on a growing share of the rows, ordered by difficulty.

A `Curriculum` is the trainer's `RowSchedule`: epoch 1 sees the easiest `pacing_start` share
of the training rows (the hardest for an anti-curriculum, a fixed random share for the control),
and the share grows by the `pacing` function until the whole set is used after `pacing_full` of
the epochs. Difficulty is either a user column (higher = harder) or the per-row loss of small
cross-fitted reference networks, so no row is scored by a model that was trained on it.

The search objective calls `make_curriculum(recipe, ...)` and passes the result to `fit` as
`row_schedule`; with `curriculum: none` it returns None and training is unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from sklearn.model_selection import KFold, StratifiedKFold
from torch.nn import functional as F

from ..errors import ConfigError, check_choice
from ..models import ModelMeta, build_model
from ._heads import Head, make_head
from ._recipe import DEFAULTS
from ._trainer import fit, predict_outputs

CURRICULA = ("none", "easy_first", "hard_first", "random")
PACINGS = ("linear", "root", "step")
STEPS = 4  # the `step` pacing reaches the whole set in this many equal increments

CURRICULUM_DEFAULTS = {
    "curriculum": "none", "pacing": "linear", "pacing_start": 0.25, "pacing_full": 0.5,
}

# Every order but "none", so a user who widens the curriculum choices keeps the pacing entries.
_ORDERED = {"curriculum": ["easy_first", "hard_first", "random"]}
# Below a tenth of the rows the first epochs see too few rows to learn from; the whole set by
# the end of the first fifth of training at the earliest, the last fifth at the latest.
CURRICULUM_SPACE = {
    "curriculum": {"type": "categorical", "choices": ["none", "easy_first"]},
    "pacing": {"type": "categorical", "choices": list(PACINGS), "when": _ORDERED},
    "pacing_start": {"type": "float", "low": 0.1, "high": 0.6, "when": _ORDERED},
    "pacing_full": {"type": "float", "low": 0.2, "high": 0.8, "when": _ORDERED},
}

# The reference networks score difficulty, not accuracy: small, a few epochs, one fixed recipe,
# so the scores do not depend on the trial's hyperparameters and can be cached per data split.
REFERENCE_MODEL = {"n_layers": 1, "units": 64}
REFERENCE_RECIPE = {"optimizer": "adam", "lr": 1e-2, "schedule": "constant", "weight_decay": 0.0,
                    "mixup_alpha": 0.0, "restore_best": False}
REFERENCE_EPOCHS = 10


def pacing_share(pacing: str, epoch: int, epochs: int, start: float, full: float) -> float:
    """The share of the ordered training rows that `epoch` (1-based) of `epochs` uses.

    The share is `start` in epoch 1 and 1.0 from epoch ceil(full * epochs) on. In between, with
    t = (epoch - 1) / (that epoch - 1) going from 0 to 1: linear is start + (1 - start) * t,
    root is start + (1 - start) * sqrt(t) (more rows early), and step adds a quarter of
    (1 - start) each time t passes a quarter.

    >>> pacing_share("linear", 3, 10, 0.25, 0.5)
    0.625
    """
    pacing = check_pacing(pacing, start, full)
    if epochs < 1:
        raise ConfigError(f"epochs must be >= 1; got {epochs}")
    if epoch < 1:
        raise ConfigError(f"epoch must be >= 1 (epochs count from 1); got {epoch}")
    full_epoch = max(1, math.ceil(full * epochs))
    if epoch >= full_epoch:
        return 1.0
    span = full_epoch - 1
    if pacing == "linear":
        grown = (epoch - 1) / span
    elif pacing == "root":
        grown = math.sqrt((epoch - 1) / span)
    else:  # integer division, so a step lands exactly on its epoch, without rounding error
        grown = (STEPS * (epoch - 1) // span) / STEPS
    return start + (1.0 - start) * grown


def check_pacing(pacing: str, start: float, full: float) -> str:
    """Validate the pacing name and its two shares; called before any costly scoring."""
    check_choice("pacing", pacing, PACINGS)
    for name, value in (("pacing_start", start), ("pacing_full", full)):
        try:
            share = float(value)
        except (TypeError, ValueError):
            share = math.nan
        if not 0 < share <= 1:
            raise ConfigError(f"{name} must be a share in (0, 1]; got {value!r}")
    return pacing


class Curriculum:
    """A `RowSchedule` that feeds the trainer a growing share of rows ordered by difficulty.

    `difficulty` holds one number per training row, higher = harder. `order`: easy_first
    (a curriculum), hard_first (an anti-curriculum) or random (the control: a fixed random
    order, the same pacing). Ties are broken by a seeded random order, so rows with equal
    difficulty do not enter in file order. Each epoch gets at least min(n, batch_size) rows.

    >>> c = Curriculum(np.arange(8.0), "easy_first", start=0.5, full=1.0, epochs=2, batch_size=1)
    >>> sorted(c.rows(1).tolist()), c.rows(2)
    ([0, 1, 2, 3], None)
    """

    def __init__(self, difficulty: np.ndarray, order: str, pacing: str = "linear", start: float = 0.25,
                 full: float = 0.5, epochs: int = 100, seed: int = 0, batch_size: int = 64) -> None:
        check_choice("curriculum", order, CURRICULA[1:])
        self.pacing = check_pacing(pacing, start, full)
        difficulty = difficulty_from_column(difficulty)
        self.start, self.full, self.epochs = float(start), float(full), int(epochs)
        self.min_rows = min(len(difficulty), max(1, int(batch_size)))
        rng = np.random.default_rng(seed)
        tie_break = rng.permutation(len(difficulty))
        if order == "easy_first":
            self.order = np.lexsort((tie_break, difficulty))
        elif order == "hard_first":
            self.order = np.lexsort((tie_break, -difficulty))
        else:
            self.order = tie_break

    def share(self, epoch: int) -> float:
        return pacing_share(self.pacing, epoch, self.epochs, self.start, self.full)

    def rows(self, epoch: int) -> np.ndarray | None:
        """The indices of the rows `epoch` trains on, or None once it uses all of them."""
        n = len(self.order)
        # A share such as 1/3 times 300 rows lands a hair above 100.0 in floating point;
        # without the tolerance that would take one row more than the pacing means.
        count = max(self.min_rows, math.ceil(self.share(epoch) * n - 1e-9))
        return None if count >= n else self.order[:count].copy()


def difficulty_from_column(values: np.ndarray, name: str = "difficulty") -> np.ndarray:
    """A user's difficulty column (numbers, higher = harder) as a float array, checked."""
    try:
        scores = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{name} column must hold numbers (higher = harder); {error}") from None
    if scores.ndim != 1:
        raise ConfigError(f"{name} column must be one value per row; got shape {scores.shape}")
    missing = np.flatnonzero(np.isnan(scores))
    if len(missing):
        raise ConfigError(f"{name} column has {len(missing)} missing (NaN) value(s), first in row "
                          f"{missing[0]}; fill them or drop those rows")
    return scores


def difficulty_folds(y: np.ndarray, task: str, folds: int = 2, seed: int = 0) -> np.ndarray:
    """Which fold (0..folds-1) each row belongs to when cross-fitting the reference networks:
    shuffled, stratified by class for classification when every class fills every fold."""
    n = len(y)
    if not (isinstance(folds, int) and 2 <= folds <= n):
        raise ConfigError(f"folds must be a whole number from 2 to the number of rows ({n}); got {folds!r}")
    y = np.asarray(y)
    stratify = task != "regression" and np.unique(y, return_counts=True)[1].min() >= folds
    splitter = (StratifiedKFold if stratify else KFold)(n_splits=folds, shuffle=True, random_state=seed)
    assignment = np.empty(n, dtype=np.int64)
    for fold, (_, held) in enumerate(splitter.split(np.zeros((n, 1)), y if stratify else None)):
        assignment[held] = fold
    return assignment


def difficulty_from_loss(X: np.ndarray, y: np.ndarray, task: str, n_classes: int, recipe: Mapping | None = None,
                         *, seed: int = 0, device: torch.device | None = None, folds: int = 2,
                         epochs: int = REFERENCE_EPOCHS) -> np.ndarray:
    """Per-row difficulty: the loss of each row under a small network trained on the other folds.

    Cross-fitting keeps a row from being scored by a network that saw it, which could have
    memorised it (mislabelled rows would then look easy). `recipe` supplies only the loss
    choice (`loss`, `class_weight`); the reference networks train with a fixed quick recipe.
    Classification scores the cross entropy (BCE for a one-logit head) of the true class,
    regression the squared error on standardized targets; class weights and smoothing are
    left out so scores compare across classes.

    >>> difficulty_from_loss(X, y, "binary", 2, seed=0).shape   # doctest: +SKIP
    (300,)
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.asarray(y)
    if len(X) != len(y):
        raise ConfigError(f"X has {len(X)} rows but y has {len(y)}")
    device = device or torch.device("cpu")
    # Target scaling from all rows: aggregate statistics, which let every fold's scores share
    # one unit without letting any network see a single held-apart row.
    head = make_head(task, y, n_classes, dict(recipe or {}))
    assignment = difficulty_folds(y, task, folds, seed)
    train_recipe = {**REFERENCE_RECIPE, "batch_size": _reference_batch_size(len(X) * (folds - 1) // folds),
                    "max_epochs": int(epochs)}
    scores = np.empty(len(X), dtype=np.float64)
    for fold in range(folds):
        held, used = assignment == fold, assignment != fold
        # A private random stream: the same seed scores the same, and the caller's global
        # torch state (which builds the trial's own network next) is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1000 + fold)
            model = build_model("mlp", REFERENCE_MODEL, ModelMeta(X.shape[1], head.output_dim, task))
        fit(model, head, X[used], y[used], train_recipe, epochs=int(epochs), device=device, seed=seed + fold)
        outputs = predict_outputs(model, torch.from_numpy(X[held]).to(device))
        scores[held] = per_row_loss(head, outputs, head.targets(y[held], device))
    return scores


def per_row_loss(head: Head, outputs: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """Each row's unweighted loss under `head`, from raw outputs and `head.targets(...)`."""
    outputs = outputs.detach().float()
    if head.task == "regression":
        losses = (outputs.reshape(-1) - targets) ** 2
    elif head.loss == "bce":
        losses = F.binary_cross_entropy_with_logits(outputs.reshape(-1), targets, reduction="none")
    else:
        losses = F.cross_entropy(outputs, targets, reduction="none")
    return losses.cpu().numpy().astype(np.float64)


def make_curriculum(recipe: Mapping, X: np.ndarray, y: np.ndarray, task: str, n_classes: int, epochs: int,
                    seed: int = 0, device: torch.device | None = None,
                    difficulty: np.ndarray | None = None) -> Curriculum | None:
    """The recipe's curriculum for `fit(..., row_schedule=...)`, or None for `curriculum: none`.

    Without a `difficulty` column the rows are scored by `difficulty_from_loss` (not needed,
    and skipped, for the random control). `epochs` is the run's maximum, which the pacing
    stretches over.
    """
    recipe = {**CURRICULUM_DEFAULTS, **recipe}
    order = check_choice("curriculum", recipe["curriculum"], CURRICULA)
    if order == "none":
        return None
    # Checked here, before the reference networks spend any time.
    check_pacing(recipe["pacing"], recipe["pacing_start"], recipe["pacing_full"])
    if difficulty is not None:
        difficulty = difficulty_from_column(difficulty)
        if len(difficulty) != len(X):
            raise ConfigError(f"difficulty column has {len(difficulty)} values but the training set "
                              f"has {len(X)} rows")
    elif order == "random":
        difficulty = np.zeros(len(X))
    else:
        difficulty = difficulty_from_loss(X, y, task, n_classes, recipe, seed=seed, device=device)
    return Curriculum(difficulty, order, recipe["pacing"], recipe["pacing_start"], recipe["pacing_full"],
                      epochs=epochs, seed=seed, batch_size=recipe.get("batch_size", DEFAULTS["batch_size"]))


def _reference_batch_size(rows: int) -> int:
    """About twenty steps per epoch, within 32..512: small sets still take enough steps in a few
    epochs to learn, and large ones do not pay for thousands of tiny steps."""
    return int(min(512, max(32, rows // 20)))
