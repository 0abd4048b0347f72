"""The trial loop: run until the trial budget is spent or the time to stop has come.

The same loop runs in one process or in many at once on a shared study (worker processes,
Ray tasks, `nntune worker` on other machines). Everything it decides on is read from the
storage, so that N workers together run exactly the trials asked for:

- a worker stops once the trials that count toward the budget reach `n_trials`;
- while the remaining trials are all running elsewhere, it waits instead of starting more,
  because a running trial may still die and be queued again;
- running trials whose worker died are failed and queued again (heartbeats for database
  storage, a process check for workers on this host);
- workers that finish together stagger (a random pause of up to LAST_SLOTS_JITTER) before
  taking one of the last free trials; two that still start the last trial at the same moment
  cannot both run it: the later one is marked failed as `surplus` before it trains, and does
  not count. (Optuna creates a trial as it asks, so the count cannot be claimed atomically.)
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence

import optuna

from ..errors import TrialFailed
from ._objective import Objective
from ._population import Batches
from ._study import TrialState, counts_toward_budget, fail_dead_trials, fail_stale_trials, worker_identity

TrialCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]
POLL_SECONDS = 1.0
LAST_SLOTS_JITTER = 0.3
_jitter = random.Random()  # its own stream: user code may seed the global one alike in every worker


class _Loop:
    def __init__(self, study: optuna.Study, objective: Callable[[optuna.Trial], float],
                 n_trials: int | None, stop_at: Callable[[], float | None],
                 callbacks: Sequence[TrialCallback], retries: int | None) -> None:
        self.study, self.objective, self.n_trials = study, objective, n_trials
        self.stop_at, self.callbacks, self.retries = stop_at, callbacks, retries
        self.worker = worker_identity()
        self.paused = False
        self.ran = 0
        self.free: int | None = None  # trials the budget leaves for this worker to start, as last counted

    def state(self) -> str:
        """'done' (budget spent), 'due' (out of time), 'wait' (the rest is running) or 'go'."""
        trials = self.study.get_trials(deepcopy=False)
        if fail_dead_trials(self.study, self.retries, trials):
            trials = self.study.get_trials(deepcopy=False)
        counted = sum(counts_toward_budget(t) for t in trials)
        if self.n_trials is not None and counted >= self.n_trials:
            return "done"
        running = sum(t.state == TrialState.RUNNING for t in trials)
        due = self.stop_at()
        if due is not None and time.monotonic() >= due:
            if self.ran or running or any(t.state == TrialState.COMPLETE for t in trials):
                return "due"
            # Without any complete trial there is no model yet: one trial runs (cut short).
        if self.n_trials is not None:
            free = self.n_trials - counted - running
            self.free = free
            if free <= 0:
                return "wait"
            if free <= 2 and running:  # others are at work: maybe about to take these too
                return "last"
        return "go"


    def guarded(self, trial: optuna.Trial) -> float:
        self.claim(trial)
        return self.objective(trial)

    def claim(self, trial: optuna.Trial) -> None:
        """Mark the trial as this worker's; fails it as surplus when the budget is already taken."""
        trial.set_user_attr("worker", {**self.worker, "trial": trial.number})
        if self.n_trials is not None:
            earlier = self.study.get_trials(deepcopy=False)
            claimed = sum(counts_toward_budget(t) or (t.state == TrialState.RUNNING and t.number < trial.number)
                          for t in earlier)
            if claimed >= self.n_trials:
                trial.set_user_attr("surplus", True)
                raise TrialFailed(f"surplus: the study's {self.n_trials} trials were all taken "
                                  "when this one started")

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.ran += 1
        sampler = study.sampler
        if isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study):
            study.stop()  # every grid point has run: nothing is left to pause for
            return
        if self.state() != "go":
            self.paused = True
            study.stop()

    def run(self, batches: Batches | None = None) -> None:
        staggered = False
        while True:
            fail_stale_trials(self.study)  # Optuna's heartbeat check (it also runs before each trial)
            state = self.state()
            if state in ("done", "due"):
                return
            if state == "wait":
                time.sleep(POLL_SECONDS)
                continue
            if state == "last" and not staggered:
                time.sleep(_jitter.uniform(0.0, LAST_SLOTS_JITTER))
                staggered = True
                continue
            staggered = False
            if batches is not None:  # populations: ask, train and tell a batch at a time
                for frozen in batches.step(self.study, self.free if self.n_trials is not None else None):
                    self.ran += 1
                    for callback in self.callbacks:
                        callback(self.study, frozen)
                continue
            self.paused = False
            self.study.optimize(self.guarded, n_trials=None, catch=(TrialFailed,),
                                callbacks=[*self.callbacks, self.after_trial], gc_after_trial=False)
            if not self.paused:
                return  # the sampler stopped the study (a grid is exhausted)


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    n_trials: int | None,
    stop_at: Callable[[], float | None],
    callbacks: Sequence[TrialCallback] = (),
    retries: int | None = 2,
    population: int = 1,
    population_auto: bool = False,
) -> None:
    """Run trials until `n_trials` count in the study (earlier ones and other workers' too) or
    the time `stop_at()` returns (time.monotonic) has passed. Failed trials do not stop the loop;
    trials of dead workers are queued again up to `retries` times. `population` > 1 (with an
    nntune Objective): trials that can train together are asked and trained in batches of that
    many (search/_population.py); `population_auto`: only where a network is small enough to gain."""
    optuna_logger = logging.getLogger("optuna")
    level = optuna_logger.level
    optuna_logger.setLevel(logging.ERROR)  # failed trials are reported by nntune, not logged twice
    try:
        loop = _Loop(study, objective, n_trials, stop_at, callbacks, retries)
        batches = None
        if population > 1 and isinstance(objective, Objective):
            batches = Batches(objective, population, population_auto, loop.claim, stop_at)
        loop.run(batches)
    finally:
        optuna_logger.setLevel(level)
