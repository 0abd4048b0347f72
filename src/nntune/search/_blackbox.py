"""Black-box tuning without nntune's trainer: `optimize(objective, space, budget)` and the
ask/tell `Study` for users who drive the loop themselves.

The objective comes in three forms, told apart by its signature and what it returns:

- `objective(config, epochs) -> score`: trains from scratch for `epochs` epochs;
- `objective(config) -> iterator of per-epoch scores`: nntune advances it epoch by epoch and
  stops it when the pruner says so, so a configuration that goes on pays only for the epochs
  it adds (promotion is asynchronous, as in ASHA: a trial continues at once or stops, so no
  configuration is ever paused and trained twice);
- `objective(config) -> score`: one full evaluation, no fidelity.
"""

from __future__ import annotations

import inspect
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..config import parse_duration
from ..errors import ConfigError, TrialFailed
from ._auto import rungs
from ._auto import starting_points as recipe_points  # (Study takes a flag named starting_points)
from ._pruners import make_pruner
from ._space import Space, parse_space, suggest
from ._strategies import make_sampler
from ._study import get_storage

DIRECTIONS = ("maximize", "minimize")
_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(trials?|epochs?)\s*$")


@dataclass(frozen=True)
class Budget:
    """How much a search may spend: trials, epochs (summed over trials) or seconds."""

    trials: int | None = None
    epochs: int | None = None
    seconds: float | None = None

    @classmethod
    def parse(cls, value: Any) -> Budget:
        """50 (trials), '50 trials', '2000 epochs', '90s' / '10m' / '1h' (wall clock)."""
        if isinstance(value, Budget):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return cls(trials=value)
        text = str(value)
        match = _BUDGET.match(text)
        if match and float(match.group(1)) > 0:
            amount = int(float(match.group(1)))
            return cls(trials=amount) if match.group(2).startswith("trial") else cls(epochs=amount)
        try:
            return cls(seconds=parse_duration(value, "budget"))
        except ConfigError:
            raise ConfigError(f"budget must be a number of trials (50 or '50 trials'), of epochs "
                              f"('2000 epochs') or a duration ('90s', '10m'); got {value!r}") from None


def load_space(space: str | Path | Mapping[str, Any]) -> tuple[Space, dict[str, Any]]:
    """A search space as the tuner takes it: a mapping of entries, or a YAML file holding one
    (either the entries themselves or a run config with search.space)."""
    if isinstance(space, str | Path):
        import yaml

        path = Path(space)
        if not path.is_file():
            raise ConfigError(f"space file not found: '{space}'")
        loaded = yaml.safe_load(path.read_text()) or {}
        space = loaded.get("search", {}).get("space", loaded) if isinstance(loaded, dict) else loaded
    if not isinstance(space, Mapping) or not space:
        raise ConfigError(f"space must be a non-empty mapping of parameter entries; got {space!r}")
    return parse_space(space)


class Ask:
    """One configuration to evaluate: `config`, `number`; report per-epoch scores with
    `report(score, epoch)` and ask `should_stop()` to let the pruner end it early."""

    def __init__(self, trial: optuna.Trial, config: dict[str, Any]) -> None:
        self.trial, self.config, self.number = trial, config, trial.number

    def report(self, score: float, epoch: int) -> None:
        self.trial.report(float(score), int(epoch))

    def should_stop(self) -> bool:
        return self.trial.should_prune()


class Study:
    """Ask/tell over nntune's strategies and pruners, stored in an Optuna study.

    >>> study = nntune.create_study({"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}})
    >>> ask = study.ask(); study.tell(ask, train_and_score(ask.config))
    >>> study.best_config, study.best_score
    """

    def __init__(self, space: str | Path | Mapping[str, Any], *, strategy: str = "auto", pruner: str = "auto",
                 direction: str = "maximize", seed: int = 0, storage: str | None = None,
                 study_name: str | None = None, max_epochs: int = 100, n_trials: int | None = None,
                 load_if_exists: bool = True, starting_points: bool = True) -> None:
        if direction not in DIRECTIONS:
            raise ConfigError(f"direction must be one of {', '.join(DIRECTIONS)}; got {direction!r}")
        if int(max_epochs) < 1:
            raise ConfigError(f"max_epochs must be >= 1; got {max_epochs}")
        self.space, self.fixed = load_space(space)
        self.max_epochs = int(max_epochs)
        sampler = make_sampler(strategy, seed, self.space, self.fixed, n_trials=n_trials)
        self.study = optuna.create_study(
            storage=get_storage(storage) if storage else None, sampler=sampler,
            pruner=make_pruner(pruner, self.max_epochs, strategy=strategy, n_trials=n_trials),
            study_name=study_name, direction=direction, load_if_exists=load_if_exists)
        if starting_points and strategy not in ("grid", "random", "qmc") and not self.study.get_trials(deepcopy=False):
            for point in recipe_points(self.space):
                self.study.enqueue_trial(point, skip_if_exists=True)

    def ask(self) -> Ask:
        trial = self.study.ask()
        return Ask(trial, suggest(trial, self.space, self.fixed))

    def tell(self, ask: Ask | int, score: float | None = None, *, pruned: bool = False,
             failed: bool = False) -> None:
        """Record the result of `ask`: its score, or that it was stopped early (`pruned`) or
        could not be evaluated (`failed`)."""
        number = ask.number if isinstance(ask, Ask) else int(ask)
        if not (failed or pruned) and score is None:
            raise ConfigError("tell needs a score unless pruned=True or failed=True")
        try:
            if failed or (not pruned and not math.isfinite(score)):
                self.study.tell(number, state=TrialState.FAIL)
            elif pruned:
                self.study.tell(number, state=TrialState.PRUNED)
            else:
                self.study.tell(number, float(score))
        except RuntimeError as exc:
            # The grid sampler stops the study when its last point is told, which Optuna allows
            # only inside optimize(); the trial is stored either way.
            if "Study.stop" not in str(exc):
                raise

    @property
    def exhausted(self) -> bool:
        """Whether the strategy has nothing left to propose (a grid fully tried)."""
        sampler = self.study.sampler
        return isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(self.study)

    @property
    def best_config(self) -> dict[str, Any]:
        return {**self.fixed, **self.study.best_trial.params}

    @property
    def best_score(self) -> float:
        return float(self.study.best_value)


def create_study(space: str | Path | Mapping[str, Any], **options: Any) -> Study:
    """An ask/tell study over `space` (options as `Study`)."""
    return Study(space, **options)


@dataclass
class OptimizeResult:
    best_config: dict[str, Any]
    best_score: float
    study: optuna.Study
    trials: int
    epochs: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


class _Spend:
    def __init__(self, budget: Budget) -> None:
        self.budget, self.trials, self.epochs = budget, 0, 0
        self.started = time.monotonic()

    def exhausted(self) -> bool:
        b = self.budget
        return ((b.trials is not None and self.trials >= b.trials)
                or (b.epochs is not None and self.epochs >= b.epochs)
                or (b.seconds is not None and time.monotonic() - self.started >= b.seconds))


def optimize(objective: Callable[..., Any], space: str | Path | Mapping[str, Any], budget: Any = 50, *,
             strategy: str = "auto", pruner: str = "auto", direction: str = "maximize", seed: int = 0,
             max_epochs: int | None = None, storage: str | None = None,
             study_name: str | None = None) -> OptimizeResult:
    """Tune `objective` over `space` within `budget` and return the best configuration.

    >>> def objective(config, epochs):          # or objective(config) yielding per-epoch scores
    ...     return train(config, epochs)
    >>> result = nntune.optimize(objective, {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}},
    ...                          budget="500 epochs", max_epochs=50)
    >>> result.best_config, result.best_score
    """
    budget = Budget.parse(budget)
    form = _form(objective)
    if form == "epochs" and max_epochs is None:
        raise ConfigError("objective(config, epochs) needs max_epochs: the epochs of a full training")
    max_epochs = int(max_epochs or 100)
    # An epoch budget also fixes the trial budget the strategy plans for (in full trainings).
    planned = budget.trials or (max(1, budget.epochs // max_epochs) if budget.epochs else None)
    study = Study(space, strategy=strategy, pruner=pruner, direction=direction, seed=seed, storage=storage,
                  study_name=study_name, max_epochs=max_epochs, n_trials=planned)
    spend = _Spend(budget)
    history: list[dict[str, Any]] = []
    # Only an explicit multi-fidelity choice pays for brief from-scratch stages ('auto' trains
    # at full fidelity when it cannot resume; with other strategies 'auto' means no pruner).
    staged = pruner not in ("auto", "none")
    while not spend.exhausted() and not study.exhausted:
        ask = study.ask()
        record = {"number": ask.number, "config": ask.config}
        try:
            if form == "epochs":
                score, state = _run_epochs(objective, ask, max_epochs, spend, staged)
            else:
                score, state = _run_steps(objective, ask, max_epochs, spend)
        except Exception as exc:  # one failing configuration ends its trial, not the search
            study.tell(ask, failed=True)
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            history.append({**record, "state": "fail", "reason": reason})
            spend.trials += 1
            continue
        study.tell(ask, score, pruned=state == "pruned")
        history.append({**record, "score": score, "state": state})
        spend.trials += 1
    complete = study.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        reasons = [h["reason"] for h in history if h["state"] == "fail"]
        raise TrialFailed(f"no configuration completed within the budget ({len(history)} tried)"
                          + (f"; the first failed with: {reasons[0]}" if reasons else ""))
    return OptimizeResult(study.best_config, study.best_score, study.study, spend.trials, spend.epochs,
                          time.monotonic() - spend.started, history)


def _form(objective: Callable[..., Any]) -> str:
    """'epochs' for objective(config, epochs), else 'config' (a score or an iterator)."""
    try:
        params = [p for p in inspect.signature(objective).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    except (TypeError, ValueError):
        return "config"
    if len(params) >= 2:
        return "epochs"
    if len(params) == 1:
        return "config"
    raise ConfigError("objective must take the configuration: objective(config) or objective(config, epochs)")


def _run_epochs(objective: Callable, ask: Ask, max_epochs: int, spend: _Spend, staged: bool) -> tuple[float, str]:
    """From scratch at each stage: the rungs a pruner may stop at (when one is chosen), then
    the full training. Each stage pays its epochs in full."""
    stages = [r for r in rungs(max_epochs) if r <= max_epochs // 4] if staged else []
    for epochs in [*stages, max_epochs]:
        score = float(objective(ask.config, epochs))
        spend.epochs += epochs
        if not math.isfinite(score):
            raise TrialFailed(f"objective returned {score}")
        if epochs == max_epochs:
            return score, "complete"
        ask.report(score, epochs)
        if ask.should_stop():
            return score, "pruned"
    raise AssertionError("unreachable")


def _run_steps(objective: Callable, ask: Ask, max_epochs: int, spend: _Spend) -> tuple[float, str]:
    """Advance a stepwise objective one epoch at a time; a plain score is one full evaluation.
    The trial's score is its best epoch (as training with early stopping keeps it)."""
    out = objective(ask.config)
    if not isinstance(out, Iterator) and not inspect.isgenerator(out):
        score = float(out)
        spend.epochs += max_epochs  # one full evaluation, as an epoch budget counts it
        if not math.isfinite(score):
            raise TrialFailed(f"objective returned {score}")
        return score, "complete"
    maximize = ask.trial.study.direction == optuna.study.StudyDirection.MAXIMIZE
    best: float | None = None
    epoch = 0
    try:
        for epoch, value in enumerate(out, start=1):
            value = float(value)
            spend.epochs += 1
            if not math.isfinite(value):
                raise TrialFailed(f"objective yielded {value} at epoch {epoch}")
            best = value if best is None or (value > best if maximize else value < best) else best
            ask.report(value, epoch)
            if epoch >= max_epochs:
                break
            if ask.should_stop():
                return best, "pruned"
            if spend.exhausted():  # the budget ends inside this trial: it did not finish
                return best, "pruned"
    finally:
        if hasattr(out, "close"):
            out.close()
    if best is None:
        raise TrialFailed("objective yielded no score")
    return best, "complete"
