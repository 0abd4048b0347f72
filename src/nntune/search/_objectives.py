"""Several objectives: the metric plus model size, inference latency or training time, with
constraints, and the rule that picks one trial from the Pareto front for the final model."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import optuna

from ..errors import ConfigError, check_choice

# What each extra objective reads from the trial's attributes; all are minimized.
COSTS = {"params": "n_params", "latency": "latency_ms", "train_time": "train_seconds"}
_CONSTRAINT = re.compile(r"^\s*([a-z_]+)\s*(<=|>=)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Objectives:
    names: tuple[str, ...]  # the metric first
    directions: tuple[str, ...]
    constraints: tuple[tuple[str, str, float], ...] = ()
    pick: str = "first"

    @property
    def multi(self) -> bool:
        return len(self.names) > 1

    def values(self, score: float, attrs: dict) -> float | tuple[float, ...]:
        if not self.multi:
            return score
        return (score, *[float(attrs[COSTS[name]]) for name in self.names[1:]])

    def record_constraints(self, trial: optuna.Trial, score: float, attrs: dict) -> None:
        """Give Optuna each constraint's violation (feasible when <= 0): its samplers steer
        away from infeasible regions and `study.best_trials` leaves them out."""
        for name, op, limit in self.constraints:
            value = float(attrs[COSTS[name]]) if name in COSTS else score
            trial.set_constraint(f"{name}{op}{limit:g}", value - limit if op == "<=" else limit - value)

    def constraints_func(self) -> Callable[[optuna.trial.FrozenTrial], Sequence[float]] | None:
        """One value per constraint, feasible when <= 0 (read from a finished trial)."""
        if not self.constraints:
            return None
        limits = self.constraints

        def violations(trial: optuna.trial.FrozenTrial) -> Sequence[float]:
            out = []
            for name, op, limit in limits:
                value = _measured(trial, name)
                if value is None:
                    out.append(math.inf)  # a failed trial satisfies nothing
                else:
                    out.append(value - limit if op == "<=" else limit - value)
            return out

        return violations


def _measured(trial: optuna.trial.FrozenTrial, name: str) -> float | None:
    if name in COSTS:
        value = trial.user_attrs.get(COSTS[name])
        return None if value is None else float(value)
    if trial.values:
        return float(trial.values[0])
    return None


def make_objectives(metric: str, direction: str, names: Sequence[str], constraints: Sequence[str],
                    pick: str) -> Objectives:
    """Validate the objective names, constraints and pick rule of a run."""
    names = [n.strip() for n in names if n.strip()]
    if names:
        if names[0] != metric:
            raise ConfigError(f"the first objective must be the run's metric '{metric}'; got '{names[0]}' "
                              f"(objectives: {', '.join(names)})")
        for name in names[1:]:
            check_choice("objective", name, tuple(COSTS))
        if len(set(names)) != len(names):
            raise ConfigError(f"objectives must not repeat; got {', '.join(names)}")
    names = names or [metric]
    parsed = []
    for text in constraints:
        match = _CONSTRAINT.match(text)
        if not match:
            raise ConfigError(f"constraint '{text}' is not of the form NAME<=NUMBER or NAME>=NUMBER "
                              f"(NAME: {metric}, {', '.join(COSTS)})")
        name, op = match.group(1), match.group(2)
        try:
            limit = float(match.group(3))
        except ValueError:
            raise ConfigError(f"constraint '{text}' has no number after {op}") from None
        check_choice("constraint name", name, (metric, *COSTS))
        parsed.append((name, op, limit))
    check_choice("pick", pick, ("first", "knee", *names))
    directions = (direction, *["minimize"] * (len(names) - 1))
    return Objectives(tuple(names), directions, tuple(parsed), pick)


def feasible(trial: optuna.trial.FrozenTrial, objectives: Objectives) -> bool:
    check = objectives.constraints_func()
    return check is None or all(v <= 0 for v in check(trial))


def pick_trial(front: list[optuna.trial.FrozenTrial], objectives: Objectives) -> optuna.trial.FrozenTrial:
    """One trial of the Pareto front: 'first' (best first objective, lowest validation loss
    on ties), an objective's name (best on it), or 'knee' (closest to the ideal point once every
    objective is scaled to [0, 1] over the front)."""
    signs = np.array([1.0 if d == "maximize" else -1.0 for d in objectives.directions])
    if objectives.pick == "knee" and len(front) > 2:
        values = np.array([t.values for t in front]) * signs
        low, high = values.min(axis=0), values.max(axis=0)
        scaled = (values - low) / np.where(high > low, high - low, 1.0)
        return front[int(np.argmin(np.linalg.norm(1.0 - scaled, axis=1)))]
    k = objectives.names.index(objectives.pick) if objectives.pick in objectives.names else 0
    return max(front, key=lambda t: (signs[k] * t.values[k], -t.user_attrs.get("val_loss", math.inf), -t.number))
