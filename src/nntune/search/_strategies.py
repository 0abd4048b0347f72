"""Search strategies: names resolved once to Optuna samplers.

Each strategy is one factory; an Optuna sampler instance is accepted as it is.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial

from ..errors import ConfigError, check_choice
from ._auto import AutoSampler
from ._space import GridPoints, Space, grid_space

# (seed, space, fixed values, planned trials or None) -> sampler
SamplerFactory = Callable[[int, Space, dict, "int | None"], optuna.samplers.BaseSampler]


# The entry of a distinct grid's stored search space that names its points.
DISTINCT_GRID_KEY = "(distinct grid: points, fingerprint)"


class DistinctGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler walking the distinct configurations of `space` (GridPoints), so a
    conditional parameter is no axis where it does not apply: with Optuna's plain grid every
    Adam point was trained once per momentum value.

    Optuna's bookkeeping is kept as it is: each trial stores its grid id (trial k takes point k
    of the seeded order, so workers sharing a study take turns along it), unvisited ids are read
    from the storage, and the study stops once every point has run. The search space stored with
    each trial names this grid, so trials of another grid, or of Optuna's plain product over the
    same axes, never count as its points."""

    def __init__(self, space: Space, fixed: dict | None = None, seed: int | None = None) -> None:
        super().__init__({}, seed=seed)  # the random state; the grid itself is replaced below
        self.points = GridPoints(space, fixed)
        n_layers = (fixed or {}).get("n_layers")
        axes = grid_space(space, n_layers_max=int(n_layers) if n_layers is not None else None)
        self._search_space = {**axes, DISTINCT_GRID_KEY: [len(self.points), self.points.fingerprint()]}
        self._n_min_trials = len(self.points)
        self._all_grids = range(len(self.points))  # (Optuna reads only its length)
        self._order = np.random.RandomState(seed or 0).permutation(len(self.points))

    def point(self, grid_id: int) -> dict:
        return self.points[int(self._order[grid_id])]

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if "grid_id" not in trial.system_attrs:
            raise ValueError("All parameters must be specified when using GridSampler with enqueue_trial.")
        point = self.point(trial.system_attrs["grid_id"])
        if param_name not in point:
            raise ValueError(f"The parameter name, {param_name}, is not found in the given grid "
                             f"(or does not apply to point {point}).")
        return point[param_name]


def _grid(seed: int, space: Space, fixed: dict, n_trials: int | None) -> optuna.samplers.BaseSampler:
    return DistinctGridSampler(space, fixed, seed=seed)


def planned_trials(strategy: object, space: Space, fixed: dict, n_trials: int | None) -> int | None:
    """The trials a run plans: `n_trials`, and for the grid no more than its distinct points."""
    if strategy != "grid":
        return n_trials
    size = len(GridPoints(space, fixed))
    return size if n_trials is None else min(n_trials, size)


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
