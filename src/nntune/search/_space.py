"""Search spaces: merge defaults with the user's entries, and turn them into trial suggestions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna

from ..config import ParamSpec
from ..errors import ConfigError

Space = dict[str, ParamSpec]


def parse_space(entries: Mapping[str, Any]) -> tuple[Space, dict[str, Any]]:
    """Split raw entries into searched parameters and fixed values (plain scalars)."""
    space: Space = {}
    fixed: dict[str, Any] = {}
    for name, entry in entries.items():
        if isinstance(entry, ParamSpec):
            space[name] = entry
        elif isinstance(entry, Mapping):
            try:
                space[name] = ParamSpec.model_validate(dict(entry))
            except Exception as exc:
                raise ConfigError(f"search space entry '{name}': {exc}".splitlines()[0]) from None
        else:
            fixed[name] = entry
    return space, fixed


def resolve_space(
    defaults: Mapping[str, Any], user: Mapping[str, Any], mode: str = "extend"
) -> tuple[Space, dict[str, Any]]:
    """The run's space: the user's entries replace or extend the defaults; plain values fix a
    parameter. Checks that every `when` refers to a parameter that exists."""
    merged = dict(user) if mode == "replace" else {**defaults, **user}
    space, fixed = parse_space(merged)
    for name, spec in space.items():
        for parent in spec.when or {}:
            if parent not in space and parent not in fixed:
                raise ConfigError(
                    f"search space entry '{name}' has when: {{{parent}: ...}}, "
                    f"but '{parent}' is not a parameter; known: {', '.join(sorted(space))}"
                )
        if spec.per_layer and "n_layers" not in space and "n_layers" not in fixed:
            raise ConfigError(f"search space entry '{name}' is per_layer but no n_layers is set")
    # A fixed value wins over the default search range of the same name.
    return {k: v for k, v in space.items() if k not in fixed}, fixed


def ordered(space: Space) -> list[str]:
    """Parameters ordered so each comes after those its `when` and `per_layer` depend on."""
    def depth(name: str, seen: frozenset = frozenset()) -> int:
        spec = space.get(name)
        if spec is None or name in seen:
            return 0
        parents = list(spec.when or {}) + (["n_layers"] if spec.per_layer else [])
        return 1 + max((depth(p, seen | {name}) for p in parents), default=-1) if parents else 0
    return sorted(space, key=depth)


def suggest(trial: optuna.Trial, space: Space, fixed: Mapping[str, Any]) -> dict[str, Any]:
    """Ask the trial for every applicable parameter, define-by-run; returns all values used."""
    params: dict[str, Any] = dict(fixed)
    for name in ordered(space):
        spec = space[name]
        if not spec.matches(params):
            continue
        if spec.per_layer:
            for i in range(int(params["n_layers"])):
                params[f"{name}_{i}"] = suggest_one(trial, f"{name}_{i}", spec)
        else:
            params[name] = suggest_one(trial, name, spec)
    return params


def suggest_one(trial: optuna.Trial, name: str, spec: ParamSpec) -> Any:
    if spec.type == "categorical":
        return trial.suggest_categorical(name, spec.choices)
    if spec.type == "int":
        return trial.suggest_int(name, int(spec.low), int(spec.high), step=int(spec.step or 1),
                                 log=spec.log)
    return trial.suggest_float(name, spec.low, spec.high, step=spec.step, log=spec.log)


def grid_values(spec: ParamSpec, points: int = 3) -> list[Any]:
    """The values the grid strategy tries for one parameter: choices, the given grid, or
    `points` values spread over the range (geometrically for log scales)."""
    if spec.grid is not None:
        return list(spec.grid)
    if spec.type == "categorical":
        return list(spec.choices or [])
    if spec.type == "int" and spec.high - spec.low + 1 <= points and not spec.log:
        return list(range(int(spec.low), int(spec.high) + 1, int(spec.step or 1)))
    values = (np.geomspace if spec.log else np.linspace)(spec.low, spec.high, points)
    if spec.type == "int":
        return sorted({int(round(v)) for v in values})
    return [float(v) for v in values]


def grid_space(space: Space, n_layers_max: int | None = None) -> dict[str, list[Any]]:
    """Optuna GridSampler's search space for `space` (per-layer entries expanded)."""
    grid: dict[str, list[Any]] = {}
    for name, spec in space.items():
        if spec.per_layer:
            layers = n_layers_max if n_layers_max is not None else int(space["n_layers"].high)
            for i in range(layers):
                grid[f"{name}_{i}"] = grid_values(spec)
        else:
            grid[name] = grid_values(spec)
    return grid
