"""`HyperParameters`: what a user's `build_model(hp)` asks for what it wants tuned.

Backed by an Optuna trial during the search (define-by-run) and by a plain dict when the best
model is rebuilt, so the same function builds both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from torch import nn

from ..errors import ConfigError
from ..models import ModelMeta


class HyperParameters:
    """Ask for values with `hp.int`, `hp.float`, `hp.choice`; read the data's shape from
    `hp.input_dim`, `hp.output_dim` and `hp.task`.

    >>> def build(hp):
    ...     width = hp.int("width", 16, 256, log=True)
    ...     return nn.Sequential(nn.Linear(hp.input_dim, width), nn.ReLU(),
    ...                          nn.Linear(width, hp.output_dim))
    """

    def __init__(self, meta: ModelMeta, trial: optuna.Trial | None = None,
                 values: Mapping[str, Any] | None = None) -> None:
        self.meta = meta
        self._trial = trial
        self._given = dict(values or {})
        self.values: dict[str, Any] = {}

    @property
    def input_dim(self) -> int:
        return self.meta.input_dim

    @property
    def output_dim(self) -> int:
        return self.meta.output_dim

    @property
    def task(self) -> str:
        return self.meta.task

    def int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return self._ask(name, lambda t: t.suggest_int(name, low, high, step=step, log=log))

    def float(self, name: str, low: float, high: float, step: float | None = None,
              log: bool = False) -> float:
        return self._ask(name, lambda t: t.suggest_float(name, low, high, step=step, log=log))

    def choice(self, name: str, choices: Sequence[Any]) -> Any:
        return self._ask(name, lambda t: t.suggest_categorical(name, list(choices)))

    def _ask(self, name: str, suggest: Callable[[optuna.Trial], Any]) -> Any:
        if name in self._given:
            value = self._given[name]
        elif self._trial is not None:
            value = suggest(self._trial)
        else:
            raise ConfigError(f"build_model asked for '{name}', which the saved parameters lack")
        self.values[name] = value
        return value


def build_custom(fn: Callable[[HyperParameters], nn.Module], hp: HyperParameters) -> nn.Module:
    module = fn(hp)
    if not isinstance(module, nn.Module):
        raise ConfigError(
            f"build_model must return a torch.nn.Module; it returned {type(module).__name__}")
    return module
