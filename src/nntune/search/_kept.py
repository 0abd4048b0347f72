"""The fold models of the search's best trials, kept so the delivered model is the validated one.

A trial trains one network per fold, each early-stopped on its own fold's validation rows. When
the folds share one encoding (data.encode_folds), those networks are exactly the members the
final `folds` model averages, and the predictions they made for their validation rows are the
out-of-fold predictions that ensemble selection weighs. Kept here, in the process that ran the
trial, the final step delivers them as they are instead of training every member again: the
budget that retraining took goes to more trials. Trials that ran elsewhere (other workers, Ray)
are retrained as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from ..models import count_parameters

# Most parameters the kept networks may hold together (float32: 4 bytes each, 1 GiB in all);
# a trial that would pass it is not kept (its models are retrained if the final step needs them).
MAX_KEPT_PARAMETERS = 256 * 1024 * 1024


@dataclass
class KeptTrial:
    """One complete trial's fold networks, their heads, and what they predicted out of fold
    (rows of the training matrix; `covered` marks those some member validated on)."""

    number: int
    value: float
    loss: float
    params: dict[str, Any]
    members: list[nn.Module]
    heads: list[Any]
    out_of_fold: np.ndarray
    covered: np.ndarray
    records: list[dict[str, Any]]

    @property
    def n_parameters(self) -> int:
        return sum(count_parameters(m) for m in self.members)


class KeptTrials:
    """The best `capacity` complete trials' fold models, by value then validation loss.

    `positions[k]`: fold k's validation rows as positions in the training matrix; `n_rows` its
    length; `preprocessor`: the encoding the members read; `direction` of the metric."""

    def __init__(self, capacity: int, direction: str, positions: list[np.ndarray], n_rows: int,
                 preprocessor: Any, max_parameters: int = MAX_KEPT_PARAMETERS) -> None:
        self.capacity, self.direction = capacity, direction
        self.positions, self.n_rows, self.preprocessor = positions, n_rows, preprocessor
        self.max_parameters = max_parameters
        self._trials: dict[int, KeptTrial] = {}

    def offer(self, number: int, value: float, loss: float, params: dict[str, Any], members: list[nn.Module],
              heads: list[Any], predictions: list[np.ndarray], records: list[dict[str, Any]]) -> None:
        """Keep a finished trial if it ranks among the best `capacity` (and fits the memory
        bound); `predictions[k]` are member k's outputs for fold k's validation rows."""
        if not np.isfinite(value) or not members:
            return
        first = np.asarray(predictions[0])
        out_of_fold = np.zeros((self.n_rows, *first.shape[1:]), dtype=np.float64)
        covered = np.zeros(self.n_rows, dtype=bool)
        for k, prediction in enumerate(predictions):
            out_of_fold[self.positions[k]] = prediction
            covered[self.positions[k]] = True
        kept = KeptTrial(number, float(value), float(loss), dict(params), [m.cpu().eval() for m in members],
                         list(heads), out_of_fold, covered, list(records))
        self._trials[number] = kept
        ranked = sorted(self._trials.values(), key=self._rank)
        total, keep = 0, {}
        for trial in ranked[:self.capacity]:
            if total + trial.n_parameters <= self.max_parameters:
                total += trial.n_parameters
                keep[trial.number] = trial
        self._trials = keep

    def get(self, number: int) -> KeptTrial | None:
        return self._trials.get(number)

    def __contains__(self, number: int) -> bool:
        return number in self._trials

    def __len__(self) -> int:
        return len(self._trials)

    def _rank(self, trial: KeptTrial) -> tuple[float, float, int]:
        sign = -1.0 if self.direction == "maximize" else 1.0
        return sign * trial.value, trial.loss, trial.number
