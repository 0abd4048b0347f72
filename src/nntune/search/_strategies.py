"""Search strategies: names resolved once to Optuna samplers.

Each strategy is one factory; an Optuna sampler instance is accepted as it is.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import optuna

from ..errors import ConfigError, check_choice
from ._auto import AutoSampler
from ._space import Space, grid_space

# (seed, space, fixed values, planned trials or None) -> sampler
SamplerFactory = Callable[[int, Space, dict, "int | None"], optuna.samplers.BaseSampler]


def _grid(seed: int, space: Space, fixed: dict, n_trials: int | None) -> optuna.samplers.BaseSampler:
    n_layers = fixed.get("n_layers")
    return optuna.samplers.GridSampler(
        grid_space(space, n_layers_max=int(n_layers) if n_layers is not None else None), seed=seed)


def _tpe(seed: int, space: Space, fixed: dict, n_trials: int | None) -> optuna.samplers.BaseSampler:
    # multivariate + group models parameter interactions and copes with conditional parameters.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                          n_startup_trials=10)


def _gp(seed: int, space: Space, fixed: dict, n_trials: int | None) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)


def _nsga2(seed: int, space: Space, fixed: dict, n_trials: int | None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=seed)


STRATEGIES: dict[str, SamplerFactory] = {
    "auto": lambda seed, space, fixed, n_trials: AutoSampler(seed=seed, n_trials=n_trials),
    "grid": _grid,
    "random": lambda seed, space, fixed, n_trials: optuna.samplers.RandomSampler(seed=seed),
    "qmc": lambda seed, space, fixed, n_trials: optuna.samplers.QMCSampler(
        qmc_type="sobol", scramble=True, seed=seed, warn_independent_sampling=False),
    "tpe": _tpe,
    "gp": _gp,
    "cmaes": lambda seed, space, fixed, n_trials: optuna.samplers.CmaEsSampler(
        seed=seed, warn_independent_sampling=False),
    "nsga2": _nsga2,
}
# Strategies that model several objectives (the others optimize one).
MULTI_OBJECTIVE = ("auto", "grid", "random", "qmc", "tpe", "gp", "nsga2")


# Strategies that walk one shared sequence: every worker must use the same seed, so that the
# workers take turns along it (the grid and Sobol samplers keep their place in the storage).
SHARED_SEQUENCE = ("grid", "qmc")


def make_sampler(strategy: str | optuna.samplers.BaseSampler, seed: int, space: Space,
                 fixed: dict | None = None, worker: int = 0, multi: bool = False,
                 n_trials: int | None = None) -> optuna.samplers.BaseSampler:
    """The sampler of `strategy`. `worker` numbers the processes sharing a study: each draws
    from its own random stream, so that parallel workers do not propose the same points.
    Constraints reach the samplers through the trials (`Trial.set_constraint`)."""
    if isinstance(strategy, optuna.samplers.BaseSampler):
        return strategy
    check_choice("strategy", strategy, (*STRATEGIES, "depth"))
    if strategy == "depth":  # a search of searches, run by nntune tune (execution/_depth.py)
        raise ConfigError("strategy 'depth' chooses n_layers inside nntune tune; here pick one of "
                          f"{', '.join(STRATEGIES)}")
    if multi and strategy not in MULTI_OBJECTIVE:
        raise ConfigError(f"strategy '{strategy}' optimizes one objective; with several objectives "
                          f"use one of: {', '.join(MULTI_OBJECTIVE)}")
    if worker and strategy not in SHARED_SEQUENCE:
        seed = seed + 7919 * worker
    if multi and strategy == "auto":
        strategy = "tpe"  # the GP of `auto` models one objective; TPE models several
    return STRATEGIES[strategy](seed, space, fixed or {}, n_trials)
