"""The wall-clock budget of one run, shared by the trial loop and the final retrain.

`--timeout` bounds the whole command, so the search stops early enough to leave room for
retraining the best configuration; that reserve is re-estimated from each finished trial.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Budget:
    timeout: float | None
    # No single trial may take more than this share of the budget, so a short budget still
    # sees several configurations instead of one slow one. The first trial may take more:
    # until one trial is complete there is no model to fall back on.
    trial_share: float = 0.25
    first_trial_share: float = 0.5
    started: float = field(default_factory=time.monotonic)
    reserve: float = 0.0
    tail: float = 0.0  # seconds of work after the final model (the report), kept free too
    # What the tail grows by per finished trial (the report's figures read every trial), up
    # to `tail_cap`; `count_trial` counts them.
    tail_per_trial: float = 0.0
    tail_cap: float = 0.0
    trials_seen: int = 0

    def __post_init__(self) -> None:
        if self.timeout is not None:
            self.reserve = 0.1 * self.timeout

    @property
    def deadline(self) -> float | None:
        return None if self.timeout is None else self.started + self.timeout

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def kept_free(self) -> float:
        """Seconds kept free after the final model: `tail`, grown with the trials so far."""
        return min(self.tail + self.tail_per_trial * self.trials_seen, max(self.tail, self.tail_cap))

    def count_trial(self) -> None:
        self.trials_seen += 1

    def search_deadline(self) -> float | None:
        """When the search must stop to leave `reserve` seconds for the final model (and
        `kept_free()` for what follows it)."""
        return None if self.deadline is None else self.deadline - self.reserve - self.kept_free()

    def final_deadline(self) -> float | None:
        """When the final model's training must end."""
        return None if self.deadline is None else self.deadline - self.kept_free()

    def trial_deadline(self, trial_started: float, first: bool = False) -> float | None:
        stop = self.search_deadline()
        if stop is None:
            return None
        share = self.first_trial_share if first else self.trial_share
        return min(stop, trial_started + share * self.timeout)

    def expect_final(self, seconds: float) -> None:
        """Set the reserve from an estimate of the final retrain's duration (capped at half)."""
        if self.timeout is not None:
            self.reserve = min(0.5 * self.timeout, max(1.0, seconds))
