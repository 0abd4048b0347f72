"""Search strategies: names resolved once to Optuna samplers.

Each strategy is one factory; an Optuna sampler instance is accepted as it is.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import optuna

from ..errors import check_choice
from ._space import Space, grid_space

SamplerFactory = Callable[[int, Space, dict], optuna.samplers.BaseSampler]


def _grid(seed: int, space: Space, fixed: dict) -> optuna.samplers.BaseSampler:
    n_layers = fixed.get("n_layers")
    return optuna.samplers.GridSampler(
        grid_space(space, n_layers_max=int(n_layers) if n_layers is not None else None), seed=seed)


def _tpe(seed: int, space: Space, fixed: dict) -> optuna.samplers.BaseSampler:
    # multivariate + group models parameter interactions and copes with conditional parameters.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                          n_startup_trials=10)


STRATEGIES: dict[str, SamplerFactory] = {
    "grid": _grid,
    "random": lambda seed, space, fixed: optuna.samplers.RandomSampler(seed=seed),
    "qmc": lambda seed, space, fixed: optuna.samplers.QMCSampler(
        qmc_type="sobol", scramble=True, seed=seed, warn_independent_sampling=False),
    "tpe": _tpe,
    "gp": lambda seed, space, fixed: optuna.samplers.GPSampler(
        seed=seed, warn_independent_sampling=False),
    "cmaes": lambda seed, space, fixed: optuna.samplers.CmaEsSampler(
        seed=seed, warn_independent_sampling=False),
}


# Strategies that walk one shared sequence: every worker must use the same seed, so that the
# workers take turns along it (the grid and Sobol samplers keep their place in the storage).
SHARED_SEQUENCE = ("grid", "qmc")


def make_sampler(strategy: str | optuna.samplers.BaseSampler, seed: int, space: Space,
                 fixed: dict | None = None, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler of `strategy`. `worker` numbers the processes sharing a study: each draws
    from its own random stream, so that parallel workers do not propose the same points."""
    if isinstance(strategy, optuna.samplers.BaseSampler):
        return strategy
    check_choice("strategy", strategy, STRATEGIES)
    if worker and strategy not in SHARED_SEQUENCE:
        seed = seed + 7919 * worker
    return STRATEGIES[strategy](seed, space, fixed or {})
