"""Pruners, fed with the per-epoch validation score; names resolved once to Optuna pruners."""

from __future__ import annotations

import optuna

from ..errors import check_choice

# The first epochs say little about the last (seen on LCBench), so no pruner acts before
# epoch 3 and the multi-fidelity ones start their rungs there.
WARMUP_EPOCHS = 3


def _pruners(max_epochs: int) -> dict:
    return {
        "none": lambda: optuna.pruners.NopPruner(),
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=WARMUP_EPOCHS),
        "percentile": lambda: optuna.pruners.PercentilePruner(
            25.0, n_startup_trials=5, n_warmup_steps=WARMUP_EPOCHS),
        "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner(
            min_resource=WARMUP_EPOCHS, reduction_factor=3),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(
            min_resource=WARMUP_EPOCHS, max_resource=max(max_epochs, WARMUP_EPOCHS + 1),
            reduction_factor=3),
    }


PRUNERS = tuple(_pruners(1))


def make_pruner(pruner: str | optuna.pruners.BasePruner, max_epochs: int) -> optuna.pruners.BasePruner:
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    check_choice("pruner", pruner, PRUNERS)
    return _pruners(max_epochs)[pruner]()
