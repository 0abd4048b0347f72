"""The trial loop: run until the trial budget is spent or the time to stop has come."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import optuna

from ..errors import TrialFailed
from ._study import finished_trials

TrialCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    n_trials: int | None,
    stop_at: Callable[[], float | None],
    callbacks: Sequence[TrialCallback] = (),
) -> None:
    """Run trials until `n_trials` are finished in the study (earlier ones count) or the
    time `stop_at()` returns (time.monotonic) has passed. Failed trials do not stop the loop."""
    remaining = None if n_trials is None else max(0, n_trials - finished_trials(study))
    if remaining == 0:
        return

    def stop_when_due(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        due = stop_at()
        if due is not None and time.monotonic() >= due:
            study.stop()

    optuna_logger = logging.getLogger("optuna")
    level = optuna_logger.level
    optuna_logger.setLevel(logging.ERROR)  # failed trials are reported by nntune, not logged twice
    try:
        due = stop_at()
        has_complete = bool(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
        if due is not None and time.monotonic() >= due and has_complete:
            return  # out of time; without any complete trial, one still runs (cut short)
        study.optimize(objective, n_trials=remaining, catch=(TrialFailed,),
                       callbacks=[*callbacks, stop_when_due], gc_after_trial=False)
    finally:
        optuna_logger.setLevel(level)
