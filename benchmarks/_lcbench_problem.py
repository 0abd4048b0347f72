"""One LCBench surrogate task as a tuning problem with an epoch budget, shared by every method
that `benchmarks/lcbench.py` compares, so that all of them pay for training the same way.

- `train(config, epochs)`: a configuration trained from scratch for `epochs` epochs; pays `epochs`.
- `steps(config)`: an iterator of per-epoch validation scores; each `next()` pays one epoch, so a
  method that continues a configuration pays only for the extra epochs.

A model trained for e epochs scores its best validation accuracy up to epoch e (early stopping
with restore-best, as nntune trains), the same for every method. Every evaluation is recorded as
(epochs spent so far, score); the best at a budget B reads the records with spent <= B, so a last
evaluation that overshoots the budget does not count.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "lcbench"
sys.path.insert(0, str(SHARED))

from surrogate import DATA_MAX, DEV_TASKS, MAX_EPOCH, SPACE, LCBench  # noqa: E402

__all__ = ["DATA_MAX", "DEV_TASKS", "MAX_EPOCH", "SPACE", "Problem"]

_BENCHES: dict[str, LCBench] = {}


class Problem:
    """Task `task` with a budget of `equivalents` full trainings (x 52 epochs)."""

    def __init__(self, task: str, equivalents: float) -> None:
        if task not in _BENCHES:
            _BENCHES[task] = LCBench(task)
        self.bench = _BENCHES[task]
        self.task = task
        self.space = SPACE
        self.max_epochs = MAX_EPOCH
        self.budget_epochs = equivalents * MAX_EPOCH
        self.spent = 0
        self.trace: list[tuple[int, float]] = []
        self._curves: dict[tuple, list[float]] = {}

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.budget_epochs

    def curve(self, config: dict) -> list[float]:
        key = tuple(sorted((k, float(v)) for k, v in config.items() if k in SPACE))
        if key not in self._curves:
            self._curves[key] = self.bench.curve({k: config[k] for k in SPACE})
        return self._curves[key]

    def train(self, config: dict, epochs: int) -> float:
        epochs = max(1, min(int(round(epochs)), self.max_epochs))
        score = max(self.curve(config)[:epochs])
        self.spent += epochs
        self.trace.append((self.spent, score))
        return score

    def steps(self, config: dict) -> Iterator[float]:
        curve = self.curve(config)
        best = float("-inf")
        for score in curve:
            self.spent += 1
            best = max(best, score)
            self.trace.append((self.spent, best))
            yield score

    def best_at(self, equivalents: float, capped: bool = True) -> float:
        """Best score found within `equivalents` full trainings (capped at the real-data max)."""
        limit = equivalents * MAX_EPOCH
        scores = [s for spent, s in self.trace if spent <= limit]
        best = max(scores, default=0.0)
        return min(best, DATA_MAX[self.task]) if capped else best
