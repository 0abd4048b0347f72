"""Pruners, fed with the per-epoch validation score; names resolved once to Optuna pruners."""

from __future__ import annotations

import optuna

from ..errors import check_choice

# The first epochs say little about the last (seen on LCBench), so no pruner acts before
# epoch 3 and the multi-fidelity ones start their rungs there.
WARMUP_EPOCHS = 3


def _pruners(max_epochs: int, strategy: object = None, n_trials: int | None = None) -> dict:
    return {
        # The strategy's own choice: the auto pruner with the auto strategy, else none.
        "auto": lambda: _auto_pruner(max_epochs, n_trials) if strategy == "auto" else optuna.pruners.NopPruner(),
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


def _auto_pruner(max_epochs: int, n_trials: int | None) -> optuna.pruners.BasePruner:
    from ._auto import AutoPruner  # (it builds on WARMUP_EPOCHS above)

    return AutoPruner(max_epochs, n_trials)


def make_pruner(pruner: str | optuna.pruners.BasePruner, max_epochs: int, strategy: object = None,
                n_trials: int | None = None) -> optuna.pruners.BasePruner:
    """The pruner of `pruner`; 'auto' depends on the `strategy` (and its planned `n_trials`)."""
    if isinstance(pruner, optuna.pruners.BasePruner):
        return pruner
    check_choice("pruner", pruner, PRUNERS)
    return _pruners(max_epochs, strategy, n_trials)[pruner]()
