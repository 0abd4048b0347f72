"""Search spaces: merge defaults with the user's entries, and turn them into trial suggestions."""

from __future__ import annotations

import hashlib
import itertools
import json
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


class GridPoints:
    """The grid's distinct configurations, each holding only the parameters that apply to it
    (momentum only with SGD, `units_i` only below `n_layers`), so no two train the same network.

    Parameters that decide whether others apply, and those that depend on them, are enumerated
    as branches; the rest form a plain product, the same on every branch, so a point is read by
    its index without listing the whole grid (the default grid has 364,500 points)."""

    def __init__(self, space: Space, fixed: Mapping[str, Any] | None = None) -> None:
        conditional = _conditional(space)
        self.branches = _branches(space, [n for n in ordered(space) if n in conditional], dict(fixed or {}))
        self.names = sorted(n for n in space if n not in conditional)
        self.axes = [grid_values(space[n]) for n in self.names]
        self._product = int(np.prod([len(a) for a in self.axes], dtype=np.int64))

    def __len__(self) -> int:
        return len(self.branches) * self._product

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"grid point {index} of {len(self)}")
        branch, rest = divmod(int(index), self._product)
        point = dict(self.branches[branch])
        for name, values in reversed(list(zip(self.names, self.axes, strict=True))):
            rest, i = divmod(rest, len(values))
            point[name] = values[i]
        return point

    def fingerprint(self) -> str:
        """Names the grid's points, so that trials of another grid are told apart in a study."""
        text = json.dumps([self.branches, self.names, self.axes], sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:16]


def _conditional(space: Space) -> set[str]:
    """Parameters that apply only sometimes, and those that decide when."""
    names = set()
    for name, spec in space.items():
        if spec.when or spec.per_layer:
            names |= {name, *(p for p in spec.when or {} if p in space)}
            if spec.per_layer and "n_layers" in space:
                names.add("n_layers")
    return names


def _branches(space: Space, names: list[str], fixed: dict[str, Any]) -> list[dict[str, Any]]:
    """Every distinct combination of `names` (in dependency order), as `suggest` would ask them."""
    branches: list[dict[str, Any]] = [{}]
    for name in names:
        spec, grown = space[name], []
        for branch in branches:
            known = {**fixed, **branch}
            if not spec.matches(known):
                grown.append(branch)
            elif spec.per_layer:
                for values in itertools.product(grid_values(spec), repeat=int(known["n_layers"])):
                    grown.append({**branch, **{f"{name}_{i}": v for i, v in enumerate(values)}})
            else:
                grown.extend({**branch, name: value} for value in grid_values(spec))
        branches = grown
    return branches
