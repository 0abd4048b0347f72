"""Depth search (strategy "depth"): how many hidden layers the network needs, found one layer
at a time before the rest of the recipe is tuned at that depth.

From the lowest n_layers of the space upward, each depth d gets a brief search of its own:
n_layers fixed at d, the other parameters tuned for `search.depth_trials` trials, each scored
by k-fold cross-validation (the run's cv, or STAGE_FOLDS). A depth's score is its best trial's
mean CV score; its standard error is the sample standard deviation of that trial's fold scores
over sqrt(k). The search stops at the first depth that does not beat the depth before it by
more than that shallower depth's standard error, and keeps the shallower one: a layer has to
earn its place (the one-standard-error rule). The main study then tunes the chosen depth.

Each depth's trials live in a study of their own, "<study>.depth<d>", in the run's storage, so
optuna-dashboard shows them and `resume` continues them instead of starting again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import optuna
import torch

from ..config import RunConfig
from ..errors import ConfigError, NntuneError, StudyExistsError
from ..search import (
    Objectives,
    Space,
    TrialCallback,
    best_trial,
    finished_trials,
    open_study,
    study_exists,
)
from ..training import set_threads
from ._budget import Budget
from ._plan import BuildModel, Plan, search, space_for

DEPTH = "depth"
# The strategy the chosen depth is tuned with (and each depth's brief search).
AFTER_DEPTH_STRATEGY = "auto"
STAGE_FOLDS = 3  # folds for scoring the depths when the run itself has no cv
# With a timeout, the depth search may use this share of the search time; the main study gets
# the rest, plus whatever the depth search leaves unused.
DEPTH_SHARE = 0.5
CURVE_ATTR = "depth_curve"  # the main study's user attribute holding the curve


def depth_study(study: str, depth: int) -> str:
    """The name of the study that searches depth `depth` of run `study`."""
    return f"{study}.depth{depth}"


def improves(deeper: Mapping[str, Any], shallower: Mapping[str, Any], direction: str) -> bool:
    """Whether the deeper depth beats the shallower one by more than the shallower's standard
    error (scores are the mean CV scores; `direction` is the metric's). A depth without any
    complete trial has no score: it never improves, and anything scored improves on it."""
    if shallower["score"] is None:
        return True
    if deeper["score"] is None:
        return False
    sign = 1.0 if direction == "maximize" else -1.0
    return sign * (deeper["score"] - shallower["score"]) > (shallower["se"] or 0.0)


def stopping_index(points: Sequence[Mapping[str, Any]], direction: str) -> int | None:
    """The index of the depth kept once a deeper one fails to improve on it; None while each
    depth so far improved on the one before."""
    for i in range(1, len(points)):
        if not improves(points[i], points[i - 1], direction):
            return i - 1
    return None


def depth_point(study: optuna.Study, depth: int, objectives: Objectives | None = None) -> dict[str, Any]:
    """One point of the curve: the depth's best trial (feasible, with constraints) and the
    standard error of its fold scores."""
    best = best_trial(study, objectives)
    point: dict[str, Any] = {"depth": depth, "score": None, "se": None, "folds": 0,
                             "trials": finished_trials(study), "best_trial": None,
                             "study": study.study_name, "chosen": False}
    if best is None:
        return point
    scores = [float(s) for s in best.user_attrs.get("fold_scores") or [best.values[0]]]
    # A trial cut short by the time budget may have one fold: no spread to measure, then.
    se = float(np.std(scores, ddof=1) / math.sqrt(len(scores))) if len(scores) > 1 else 0.0
    return {**point, "score": float(best.values[0]), "se": se, "folds": len(scores), "best_trial": best.number}


@dataclass
class _DepthBudget:
    """The run's budget, with the search cut off at one depth's deadline (None: no timeout);
    `search` asks it what it asks a Budget."""

    run: Budget
    until: float | None

    def search_deadline(self) -> float | None:
        return _earliest(self.run.search_deadline(), self.until)

    def trial_deadline(self, trial_started: float, first: bool = False) -> float | None:
        return _earliest(self.run.trial_deadline(trial_started, first), self.until)

    def expect_final(self, seconds: float) -> None:
        self.run.expect_final(seconds)

    def count_trial(self) -> None:
        self.run.count_trial()

    @property
    def timeout(self) -> float | None:
        return self.run.timeout


def _earliest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


@dataclass
class DepthSearch:
    """The depth search of one run. `of` checks the config before anything is read or
    written; `run` searches the depths once the plan exists and returns the plan of the main
    study, with n_layers fixed at the chosen depth.

    >>> depth = DepthSearch.of(cfg, None)
    >>> plan = depth.run(prepare(depth.config, data), storage, "churn", budget, device)
    """

    config: RunConfig  # the run's config with the strategy that follows the depth search
    depths: list[int]  # the depths it may try, shallowest first
    curve: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, cfg: RunConfig, build_model: BuildModel | None = None) -> DepthSearch | None:
        """The depth search asked for by `cfg`, or None for other strategies; raises
        ConfigError for what it cannot search."""
        search_cfg = cfg.search
        if search_cfg.strategy != DEPTH:
            return None
        if build_model is not None:
            raise ConfigError("strategy 'depth' chooses the n_layers of a model family; a custom build_model "
                              "decides its own layers: use another strategy (tpe, random, ...)")
        if len(search_cfg.objectives) > 1:
            raise ConfigError(f"strategy 'depth' compares depths on one score; got objectives "
                              f"{', '.join(search_cfg.objectives)}: leave out search.objectives")
        config = cfg.model_copy(deep=True)
        config.search.strategy = AFTER_DEPTH_STRATEGY
        space, fixed = space_for(config, None)
        depths = _depths(space, fixed, cfg)
        if search_cfg.depth_max is not None:
            if search_cfg.depth_max < depths[0]:
                raise ConfigError(f"search.depth_max must be at least the lowest n_layers of the space "
                                  f"({depths[0]}); got {search_cfg.depth_max}")
            depths = [d for d in depths if d <= search_cfg.depth_max]
        return cls(config, depths)

    def run(self, plan: Plan, storage: optuna.storages.BaseStorage, name: str, budget: Budget,
            device: torch.device, callbacks: Sequence[TrialCallback] = (),
            first_points: Callable[[Space], list[dict[str, Any]]] | None = None) -> Plan:
        """Search depth after depth in `storage`, beside the main study `name`, and return the
        main study's plan at the chosen depth. `first_points(space)`: recipes each depth's
        study tries first; `callbacks` hear of every depth trial, with its depth's study."""
        cfg = plan.cfg
        names = [name, *(depth_study(name, d) for d in self.depths)]
        taken = next((n for n in names if study_exists(storage, n)), None) if not cfg.resume else None
        if taken is not None:  # checked before any depth runs: a repeated command mixes nothing
            raise StudyExistsError(f"study '{taken}' already exists in this storage; pass --resume to "
                                   "continue the depth search, or --study NEW_NAME to start another")
        set_threads(cfg.training.threads)
        folds = cfg.search.cv or STAGE_FOLDS
        direction = plan.objectives.directions[0]
        stage_end = _stage_end(budget)
        self.curve = []
        for i, depth in enumerate(self.depths):
            # Time a depth leaves unused passes on to the deeper ones (which train longer).
            now = time.monotonic()
            until = None if stage_end is None else now + max(0.0, stage_end - now) / (len(self.depths) - i)
            stage = _stage_plan(plan, depth, folds)
            study = _open(stage, storage, name, depth, first_points)
            search(stage, study, _DepthBudget(budget, until), device, callbacks)
            self.curve.append(depth_point(study, depth, plan.objectives))
            if stopping_index(self.curve, direction) is not None:
                break
        kept = stopping_index(self.curve, direction)
        chosen = self.curve[len(self.curve) - 1 if kept is None else kept]
        if chosen["score"] is None:
            tried = ", ".join(str(p["depth"]) for p in self.curve)
            raise NntuneError(f"no trial of the depth search completed (depths {tried}); see the trials' "
                              f"fail_reason in the studies '{name}.depth<d>', or give a longer --timeout")
        chosen["chosen"] = True
        self._record_on_existing(storage, name)
        final = _with_depth(cfg, chosen["depth"])
        space, fixed = space_for(final, None, task=plan.table.task)
        return replace(plan, cfg=final, space=space, fixed=fixed)

    def record(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Trial callback for the main study: stores the curve with it (once it exists)."""
        if study.user_attrs.get(CURVE_ATTR) != self.curve:
            study.set_user_attr(CURVE_ATTR, self.curve)

    def _record_on_existing(self, storage: optuna.storages.BaseStorage, name: str) -> None:
        """A resumed main study keeps the depth it was tuned at; it gets the current curve."""
        if not study_exists(storage, name):
            return
        study = optuna.load_study(study_name=name, storage=storage)
        before = [p["depth"] for p in study.user_attrs.get(CURVE_ATTR) or [] if p.get("chosen")]
        now = next(p["depth"] for p in self.curve if p["chosen"])
        if before and before[0] != now:
            raise ConfigError(f"study '{name}' was tuned at depth {before[0]}; the depth search now chooses "
                              f"{now} (were depth_trials or depth_max changed?): keep them, or start a new --study")
        study.set_user_attr(CURVE_ATTR, self.curve)


def _depths(space: Space, fixed: dict[str, Any], cfg: RunConfig) -> list[int]:
    """The depths the space allows, shallowest first."""
    spec = space.get("n_layers")
    if spec is None:
        if "n_layers" not in fixed:
            raise ConfigError(f"strategy 'depth' needs a model family with n_layers; family '{cfg.model.family}' "
                              "has none: use another strategy")
        why = "search.space fixes it" if "n_layers" in cfg.search.space else "it is not in the searched space"
        raise ConfigError(f"strategy 'depth' searches n_layers, but n_layers is fixed at {fixed['n_layers']} ({why}); "
                          "give it a range such as {type: int, low: 0, high: 4}, or use another strategy")
    if spec.type == "int":
        return list(range(int(spec.low), int(spec.high) + 1, int(spec.step or 1)))
    if spec.type == "categorical" and all(isinstance(c, int) and not isinstance(c, bool) for c in spec.choices):
        return sorted(set(spec.choices))
    raise ConfigError(f"strategy 'depth' needs whole numbers for search.space.n_layers (type int, or int "
                      f"choices); got type {spec.type}")


def _open(stage: Plan, storage: optuna.storages.BaseStorage, name: str, depth: int,
          first_points: Callable[[Space], list[dict[str, Any]]] | None) -> optuna.Study:
    """The study of one depth, created (with its first recipes queued) or continued."""
    study, _ = open_study(depth_study(name, depth), storage, list(stage.objectives.directions),
                          stage.sampler(), stage.pruner(), resume=True)
    if not study.get_trials(deepcopy=False):  # (also a study whose run was killed at once)
        study.set_user_attr("depth_search", {"study": name, "n_layers": depth, "cv": stage.cfg.search.cv,
                                             "strategy": stage.cfg.search.strategy})
        for point in first_points(stage.space) if first_points else []:
            study.enqueue_trial(point, skip_if_exists=True)
    return study


def _with_depth(cfg: RunConfig, depth: int, cv: int | None = None) -> RunConfig:
    """`cfg` with n_layers fixed at `depth` (and `cv` folds when given)."""
    copy = cfg.model_copy(deep=True)
    copy.search.space = {**cfg.search.space, "n_layers": depth}
    if cv is not None:
        copy.search.cv = cv
    return copy


def _stage_plan(plan: Plan, depth: int, folds: int) -> Plan:
    """The plan of one depth's brief search: n_layers fixed, k folds, depth_trials trials."""
    cfg = _with_depth(plan.cfg, depth, cv=folds)
    space, fixed = space_for(cfg, None, task=plan.table.task)
    return replace(plan, cfg=cfg, space=space, fixed=fixed, n_trials=cfg.search.depth_trials)


def _stage_end(budget: Budget) -> float | None:
    stop = budget.search_deadline()
    if stop is None:
        return None
    now = time.monotonic()
    return now + DEPTH_SHARE * max(0.0, stop - now)
