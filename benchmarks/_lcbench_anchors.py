"""Reference ("anchor") search methods for the LCBench benchmark, each run the way its own users run it.

Every anchor is `run(problem, seed)`: it loops until `problem.exhausted`, and trains only through
`problem.train` (from scratch, pays the epochs) or `problem.steps` (pays one epoch per step), so
that all methods, nntune's and these, pay for training the same way.

    optuna_tpe            Optuna TPESampler (defaults), every trial trained for the full 52 epochs.
    optuna_tpe_hyperband  TPESampler + HyperbandPruner(1, 52, 3); a trial reports its score every
                          epoch and pays only for the epochs it ran before being pruned.
    optuna_gp             Optuna GPSampler, full 52 epochs.
    dehb                  DEHB (min_fidelity 1, max_fidelity 52, eta 3), ask/tell; each evaluation
                          trains from scratch for round(fidelity) epochs.
    smac_hb               SMAC3 HyperbandFacade, budgets 1..52, eta 3, ask/tell; from scratch.
    smac_bo               SMAC3 HPOFacade (random-forest BO), full 52 epochs, ask/tell.

HEBO is left out: 0.3.5 and 0.3.6 require numpy < 1.25, and 0.3.2, the latest without that cap, fails
at import with pymoo >= 0.6 (no pymoo.factory) and, with pymoo 0.5, at its first observe() with
pandas >= 2 (no DataFrame.append).

DEHB, SMAC3 and ConfigSpace live only in the benchmark environment (`make bench-env`), so they are
imported inside the runners; the Optuna anchors also run in the project's own environment.

Reproducibility: a seed fixes every anchor's run, in any order within a process, except smac_bo: SMAC's
local search starts from a set of configurations hashed by their text, so its order follows Python's
string hashing. Start the interpreter with PYTHONHASHSEED fixed (e.g. 0) to make smac_bo repeatable.

`overhead(name, n_trials)` times a method's own work per trial (sampler, ask and tell) on an objective
that costs nothing.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import optuna
from _lcbench_problem import SPACE

ETA = 3
MIN_EPOCHS = 1


class Budgeted(Protocol):
    """What an anchor uses of `Problem`, so that `overhead` can pass a free stand-in."""

    space: dict[str, dict[str, Any]]
    max_epochs: int
    budget_epochs: float

    @property
    def exhausted(self) -> bool: ...

    def train(self, config: dict, epochs: int) -> float: ...

    def steps(self, config: dict) -> Iterator[float]: ...


# --- search spaces -------------------------------------------------------------------------------


def suggest(trial: optuna.Trial, space: dict[str, dict[str, Any]] = SPACE) -> dict[str, Any]:
    """The space as Optuna suggestions (define-by-run)."""
    config: dict[str, Any] = {}
    for name, spec in space.items():
        if spec["type"] == "int":
            config[name] = trial.suggest_int(name, spec["low"], spec["high"], log=spec["log"])
        else:
            config[name] = trial.suggest_float(name, spec["low"], spec["high"], log=spec["log"])
    return config


def configspace(seed: int, space: dict[str, dict[str, Any]] = SPACE) -> Any:
    """The space as a ConfigSpace ConfigurationSpace (for DEHB and SMAC3), seeded for its own sampling."""
    from ConfigSpace import ConfigurationSpace, Float, Integer

    cs = ConfigurationSpace(seed=seed)
    for name, spec in space.items():
        kind = Integer if spec["type"] == "int" else Float
        cs.add(kind(name, (spec["low"], spec["high"]), log=spec["log"]))
    return cs


def _plain(config: Any) -> dict[str, Any]:
    """A library's configuration object as a dict of Python numbers."""
    return {k: (int(v) if SPACE[k]["type"] == "int" else float(v)) for k, v in dict(config).items()}


# --- Optuna ----------------------------------------------------------------------------------------


def _study(sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    # Optuna logs one INFO line per trial; at thousands of trials that is noise and time.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # A fixed name: HyperbandPruner assigns trials to brackets by a hash of the study's name, and the
    # default name is random, which would make a seeded run irreproducible.
    return optuna.create_study(study_name="lcbench", direction="maximize", sampler=sampler, pruner=pruner)


def _optuna_full(study: optuna.Study, problem: Budgeted) -> None:
    while not problem.exhausted:
        trial = study.ask()
        study.tell(trial, problem.train(suggest(trial, problem.space), problem.max_epochs))


def optuna_tpe(problem: Budgeted, seed: int) -> None:
    _optuna_full(_study(optuna.samplers.TPESampler(seed=seed)), problem)


def optuna_gp(problem: Budgeted, seed: int) -> None:
    _optuna_full(_study(optuna.samplers.GPSampler(seed=seed)), problem)


def optuna_tpe_hyperband(problem: Budgeted, seed: int) -> None:
    pruner = optuna.pruners.HyperbandPruner(min_resource=MIN_EPOCHS, max_resource=problem.max_epochs,
                                            reduction_factor=ETA)
    study = _study(optuna.samplers.TPESampler(seed=seed), pruner)
    while not problem.exhausted:
        trial = study.ask()
        best, pruned = _run_reporting(trial, problem)
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, best)


def _run_reporting(trial: optuna.Trial, problem: Budgeted) -> tuple[float, bool]:
    """Train epoch by epoch, reporting each score; (best score reached, whether the pruner stopped it)."""
    best = -math.inf
    for epoch, score in enumerate(problem.steps(suggest(trial, problem.space)), start=1):
        best = max(best, score)
        trial.report(score, epoch)
        if problem.exhausted:  # stop paying once the budget is gone, even mid-trial
            return best, False
        if trial.should_prune():
            return best, True
    return best, False


# --- DEHB --------------------------------------------------------------------------------------------


def dehb(problem: Budgeted, seed: int) -> None:
    from dehb import DEHB
    from loguru import logger

    with tempfile.TemporaryDirectory(prefix="dehb-") as out:
        # DEHB 0.1.1 (the release that accepts numpy 2) leaves the ConfigurationSpace's sampler unseeded,
        # so configspace() seeds it, as later releases do themselves.
        # save_freq="end" with no final save: no checkpoint files, nothing but the search itself.
        optimizer = DEHB(cs=configspace(seed, problem.space), min_fidelity=MIN_EPOCHS, max_fidelity=problem.max_epochs,
                         eta=ETA, n_workers=1, seed=seed, output_path=out, save_freq="end")
        # DEHB logs every job to stdout and to a file in `out` through loguru's global logger.
        logger.remove()
        while not problem.exhausted:
            job = optimizer.ask()
            epochs = round(job["fidelity"])
            score = problem.train(_plain(job["config"]), epochs)
            optimizer.tell(job, {"fitness": -score, "cost": float(epochs)})


# --- SMAC3 -------------------------------------------------------------------------------------------


def _smac_quiet() -> None:
    # logging_level=False leaves logging alone (SMAC's own setup would disable every other logger);
    # its INFO lines are then silenced here.
    logging.getLogger("smac").setLevel(logging.ERROR)


def _smac_loop(smac: Any, problem: Budgeted, epochs_of: Callable[[Any], int]) -> None:
    from smac.runhistory.dataclasses import TrialValue

    while not problem.exhausted:
        info = smac.ask()
        epochs = epochs_of(info)
        score = problem.train(_plain(info.config), epochs)
        # save=False: no runhistory JSON rewritten after every trial.
        smac.tell(info, TrialValue(cost=1.0 - score, time=float(epochs)), save=False)


def _asked_only(config: Any, seed: int = 0) -> float:
    raise RuntimeError("evaluated through ask/tell")


def _asked_only_budget(config: Any, seed: int = 0, budget: float = 0.0) -> float:
    raise RuntimeError("evaluated through ask/tell")


def smac_bo(problem: Budgeted, seed: int) -> None:
    from smac import HyperparameterOptimizationFacade as HPO
    from smac import Scenario

    _smac_quiet()
    # As a user with a budget of N full trainings would set it; it also sizes the initial design.
    n_trials = max(1, math.ceil(problem.budget_epochs / problem.max_epochs))
    with tempfile.TemporaryDirectory(prefix="smac-") as out:
        scenario = Scenario(configspace(seed, problem.space), deterministic=True, n_trials=n_trials, seed=seed,
                            output_directory=Path(out))
        smac = HPO(scenario, _asked_only, intensifier=HPO.get_intensifier(scenario, max_config_calls=1),
                   overwrite=True, logging_level=False)
        _smac_loop(smac, problem, lambda info: problem.max_epochs)


def smac_hb(problem: Budgeted, seed: int) -> None:
    from smac import HyperbandFacade, Scenario

    _smac_quiet()
    # Every evaluation pays at least one epoch, so this many never runs short.
    n_trials = max(1, math.ceil(problem.budget_epochs / MIN_EPOCHS))
    with tempfile.TemporaryDirectory(prefix="smac-") as out:
        scenario = Scenario(configspace(seed, problem.space), deterministic=True, n_trials=n_trials, seed=seed,
                            min_budget=MIN_EPOCHS, max_budget=problem.max_epochs, output_directory=Path(out))
        smac = HyperbandFacade(scenario, _asked_only_budget, intensifier=HyperbandFacade.get_intensifier(scenario, eta=ETA),
                               overwrite=True, logging_level=False)
        _smac_loop(smac, problem, lambda info: round(info.budget))


ANCHORS: dict[str, Callable[[Any, int], None]] = {
    "optuna_tpe": optuna_tpe,
    "optuna_tpe_hyperband": optuna_tpe_hyperband,
    "optuna_gp": optuna_gp,
    "dehb": dehb,
    "smac_hb": smac_hb,
    "smac_bo": smac_bo,
}


# --- method overhead ---------------------------------------------------------------------------------


def _free_score(config: dict, epoch: int, max_epochs: int) -> float:
    """A fixed, smooth score of the configuration that rises with epochs and costs nothing."""
    lr = math.log10(config["learning_rate"])
    shape = (lr + 2.0) ** 2 + (config["momentum"] - 0.9) ** 2 + (config["max_dropout"] - 0.2) ** 2
    return 1.0 / (1.0 + shape) * (1.0 - 0.5 * math.exp(-4.0 * epoch / max_epochs))


class _FreeProblem:
    """`Problem`'s interface with a free objective: counts trials and the time spent inside the objective."""

    def __init__(self, n_trials: int, limit_seconds: float, max_epochs: int = 52) -> None:
        self.space = SPACE
        self.max_epochs = max_epochs
        self.budget_epochs = float(n_trials * max_epochs)
        self.n_trials = n_trials
        self.limit_seconds = limit_seconds
        self.starts: list[float] = []
        self.objective_seconds: list[float] = []
        self.epochs: list[int] = []  # epochs each trial reported (paid)
        self.begin = time.perf_counter()

    @property
    def timed_out(self) -> bool:
        return time.perf_counter() - self.begin > self.limit_seconds

    @property
    def exhausted(self) -> bool:
        return len(self.starts) >= self.n_trials or self.timed_out

    def train(self, config: dict, epochs: int) -> float:
        start = time.perf_counter()
        self.starts.append(start)
        self.epochs.append(int(epochs))
        score = max(_free_score(config, e, self.max_epochs) for e in range(1, int(epochs) + 1))
        self.objective_seconds.append(time.perf_counter() - start)
        return score

    def steps(self, config: dict) -> Iterator[float]:
        self.starts.append(time.perf_counter())
        self.objective_seconds.append(0.0)
        self.epochs.append(0)
        for epoch in range(1, self.max_epochs + 1):
            start = time.perf_counter()
            score = _free_score(config, epoch, self.max_epochs)
            self.objective_seconds[-1] += time.perf_counter() - start
            self.epochs[-1] += 1
            yield score


def overhead(name: str, n_trials: int, seed: int = 0, limit_seconds: float = 600) -> dict:
    """A method's own seconds per trial (ask, tell, sampler), averaged over the last 10% of the trials it reached,
    and the same time per epoch those trials reported.

    A trial is one objective call (one train, or one stepwise run for the pruned anchor); its method
    time runs from its own start to the next one's, less the time inside the objective, so it holds
    this trial's tell, its reports and pruning checks, and the next trial's ask. The run stops early
    once `limit_seconds` have passed.
    """
    problem = _FreeProblem(n_trials, limit_seconds)
    ANCHORS[name](problem, seed)
    end = time.perf_counter()
    if not problem.starts:
        return {"trials_reached": 0, "seconds_per_trial_last10pct": math.nan, "ms_per_epoch_last10pct": math.nan,
                "stopped_early": True}
    bounds = problem.starts[1:] + [end]
    per_trial = [b - a - obj for a, b, obj in zip(problem.starts, bounds, problem.objective_seconds, strict=True)]
    per_trial[0] += problem.starts[0] - problem.begin  # setup and the first ask
    tail = max(1, math.ceil(len(per_trial) / 10))
    epochs = sum(problem.epochs[-tail:])
    return {"trials_reached": len(per_trial), "seconds_per_trial_last10pct": sum(per_trial[-tail:]) / tail,
            "ms_per_epoch_last10pct": 1000 * sum(per_trial[-tail:]) / max(1, epochs),
            "epochs_per_trial_last10pct": epochs / tail, "stopped_early": len(per_trial) < n_trials}
