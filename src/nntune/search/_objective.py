"""The objective: one trial = suggest values, build, train on every fold, report, score."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import torch
from torch import nn

from ..data import EncodedSplit
from ..errors import TrialFailed
from ..models import ModelMeta, build_model, count_parameters
from ..training import (
    DEFAULTS,
    Metric,
    difficulty_from_loss,
    fit,
    make_head,
    predict_outputs,
    prepare_fit,
    synonym_ids,
)
from ._cv_pruning import FOLDS_ATTR, SCORES_ATTR, STRIDE_ATTR, fold_stride, may_prune
from ._hp import HyperParameters, build_custom
from ._kept import KeptTrials
from ._objectives import Objectives
from ._space import Space, suggest

ModelSource = str | Callable[[HyperParameters], nn.Module]


def make_module(source: ModelSource, params: dict[str, Any], meta: ModelMeta,
                trial: optuna.Trial | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Build the network for `params`: a registered family by name, or the user's function
    (which may ask the trial for more values). Returns the module and every value used."""
    if isinstance(source, str):
        # Family auto: the trial chose one (its parameters carry the choice).
        family = params.get("family", source) if source == "auto" else source
        return build_model(family, params, meta), params
    hp = HyperParameters(meta, trial=trial, values=params)
    module = build_custom(source, hp)
    return module, {**params, **hp.values}


@dataclass
class Objective:
    folds: list[EncodedSplit]
    task: str
    n_classes: int
    metric: Metric
    space: Space
    fixed: dict[str, Any]
    model: ModelSource
    device: torch.device
    seed: int
    trial_deadline: Callable[[float, bool], float | None] = lambda start, first: None
    objectives: Objectives | None = None
    pretrained: dict[str, torch.Tensor] | None = None  # transfer learning: the weights to start from
    kind: str = "table"  # of the data: table, image, signal, timeseries, text, graph
    synonym_words: dict[str, list[str]] | None = None  # text augmentation: word -> synonyms
    keep: KeptTrials | None = None  # where complete trials leave their fold models (search/_kept.py)
    # Per-fold values computed once per worker instead of once per trial: loss-based curriculum
    # scores per (fold, loss, class weight) (two small reference networks each), and the
    # synonym table in each fold's token ids.
    _difficulty: dict[tuple, Any] = field(default_factory=dict)

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        run = self.start(trial)
        try:
            for k, fold in enumerate(self.folds):
                if k and run.out_of_time():
                    break
                module, head = self.build(run, k, fold)
                extras = prepare_fit(
                    module, run.params, fold.X_train, fold.y_train, task=self.task, n_classes=self.n_classes,
                    epochs=int(run.params["max_epochs"]), device=self.device, seed=self.seed + trial.number,
                    pretrained=self.pretrained, X_unlabeled=fold.X_unlabeled,
                    difficulty=self.difficulty(k, fold, run.params), kind=self.kind,
                    synonyms=self.synonyms(fold))
                result = fit(
                    module, head, fold.X_train, fold.y_train, run.params,
                    X_val=fold.X_eval, y_val=fold.y_eval, metric=self.metric, on_epoch_end=run.reporter(k),
                    deadline=run.deadline, device=self.device, seed=self.seed + trial.number, **extras,
                )
                run.add_fold(k, fold, module, head, result)
        except optuna.TrialPruned:
            run.record()
            raise
        except Exception as exc:  # any failure ends this trial only; the study goes on
            raise run.failed(exc) from exc
        return self.finish(run)

    def start(self, trial: optuna.Trial) -> TrialRun:
        """A trial's values, deadline and (with folds) its step layout, before its first fold."""
        started = time.monotonic()
        run = TrialRun(trial, started, self.trial_deadline(started, not _has_complete(trial)),
                       suggest(trial, self.space, self.fixed), len(self.folds),
                       fold_stride(_most_epochs(self.space, self.fixed)), self.multi, self.keep is not None,
                       self.device)
        if run.cv:
            trial.set_user_attr(STRIDE_ATTR, run.stride)
            trial.set_user_attr(FOLDS_ATTR, len(self.folds))
        return run

    def build(self, run: TrialRun, k: int, fold: EncodedSplit) -> tuple[nn.Module, Any]:
        """Fold k's head and network for the trial, from the trial's seed (the same weights
        whether it trains alone or in a population)."""
        torch.manual_seed(self.seed + run.trial.number)
        head = make_head(self.task, fold.y_train, self.n_classes, run.params)
        meta = split_meta(fold, head.output_dim, self.task, self.kind)
        module, run.params = make_module(self.model, run.params, meta, run.trial if k == 0 else None)
        run.n_params = count_parameters(module)
        return module, head

    def finish(self, run: TrialRun) -> float | tuple[float, ...]:
        """Record a trial whose folds are done; its value (raises TrialPruned when the time
        budget cut it short and other trials are complete)."""
        trial, scores = run.trial, run.scores
        seconds = run.record()
        trial.set_user_attr("fold_scores", scores)
        trial.set_user_attr("score_std", float(np.std(scores)) if len(scores) > 1 else None)
        trial.set_user_attr("val_loss", float(np.mean(run.losses)))
        trial.set_user_attr("best_epochs", run.epochs)
        trial.set_user_attr("epochs", float(np.mean(run.epochs)))
        trial.set_user_attr("stop_reasons", run.stops)
        trial.set_user_attr("epochs_run", run.runs)
        if len(scores) < len(self.folds) and _has_complete(trial):
            # Cut short by the time budget: not comparable with fully evaluated trials. When it
            # is the only one, its folds still give the run a model within the budget.
            raise optuna.TrialPruned("ran out of time before every fold was trained")
        if self.objectives is None or not self.objectives.multi and not self.objectives.constraints:
            if self.keep is not None:
                records = [{"fold": k, "epochs": e, "epochs_run": r, "score": v, "stop_reason": why}
                           for k, (e, r, v, why) in enumerate(zip(run.epochs, run.runs, scores, run.stops,
                                                                   strict=True))]
                self.keep.offer(trial.number, float(np.mean(scores)), float(np.mean(run.losses)), run.params,
                                run.members, run.heads, run.predictions, records)
            return float(np.mean(scores))
        # The same numbers as the trial's attributes, which constraints are checked against later.
        attrs = {"n_params": run.n_params, "train_seconds": seconds,
                 "latency_ms": latency_ms(run.members[-1] if run.members else run.last_module,
                                          self.folds[-1].X_eval, self.device)}
        trial.set_user_attr("latency_ms", attrs["latency_ms"])
        self.objectives.record_constraints(trial, float(np.mean(scores)), attrs)
        return self.objectives.values(float(np.mean(scores)), attrs)

    def synonyms(self, fold: EncodedSplit) -> dict[int, list[int]] | None:
        """The synonym table in this fold's token ids (each fold trains its own tokenizer),
        made once per fold."""
        key = ("synonyms", id(fold))
        if key not in self._difficulty:
            self._difficulty[key] = fold_synonyms(fold, self.synonym_words)
        return self._difficulty[key]

    def difficulty(self, k: int, fold: EncodedSplit, params: dict[str, Any]) -> np.ndarray | None:
        """The curriculum scores of fold k's training rows: the user's column, or the cached
        reference-model losses when the recipe orders rows by difficulty."""
        if fold.difficulty is not None or params.get("curriculum", "none") not in ("easy_first", "hard_first"):
            return fold.difficulty
        key = (k, params.get("loss"), params.get("class_weight"))
        if key not in self._difficulty:
            self._difficulty[key] = difficulty_from_loss(fold.X_train, fold.y_train, self.task, self.n_classes,
                                                         params, seed=self.seed, device=self.device)
        return self._difficulty[key]

    @property
    def multi(self) -> bool:
        return self.objectives is not None and self.objectives.multi


@dataclass
class TrialRun:
    """One trial under way: its values and what its folds gave so far."""

    trial: optuna.Trial
    started: float
    deadline: float | None
    params: dict[str, Any]
    n_folds: int
    stride: int
    multi: bool
    keeps: bool  # whether fold models and their predictions are kept (search/_kept.py)
    device: torch.device
    curves: dict[str, list[float]] = field(default_factory=dict)
    scores: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    members: list[nn.Module] = field(default_factory=list)
    heads: list[Any] = field(default_factory=list)
    predictions: list[np.ndarray] = field(default_factory=list)
    n_params: int = 0
    last_module: nn.Module | None = None
    # Trained in a population: its seconds are what its folds would have taken alone (the
    # population's own estimate), not the population's wall clock, which its members share.
    in_population: bool = False
    alone_seconds: float = 0.0

    @property
    def cv(self) -> bool:
        return self.n_folds > 1

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def reporter(self, k: int):
        """Fold k's per-epoch callback. With folds, fold k's epoch e is step k * stride + e:
        every fold's curve is reported without two folds sharing a step, and fold 0 keeps plain
        epoch numbers."""
        return _reporter(self.trial, self.curves if k == 0 else {}, self.multi, k, self.stride)

    def add_fold(self, k: int, fold: EncodedSplit, module: nn.Module, head: Any, result: Any) -> None:
        """Fold k's result; with folds, the pruner may then stop the trial (raises TrialPruned)."""
        self.scores.append(result.best_score)
        self.epochs.append(result.best_epoch)
        self.stops.append(result.stop_reason)
        self.runs.append(result.epochs_run)
        self.alone_seconds += float(result.seconds)
        self.losses.append(_settled_loss(result.history["val_loss"], result.best_epoch))
        self.last_module = module
        if k == 0:
            self.curves = result.history
        if self.keeps:
            with torch.inference_mode():
                X_eval = torch.from_numpy(np.ascontiguousarray(fold.X_eval)).to(self.device)
                self.predictions.append(head.scores(predict_outputs(module, X_eval)))
            self.members.append(module)
            self.heads.append(head)
        if self.cv:
            # Finished folds, for the pruner to weigh this trial against the best one between
            # folds; after the last fold the trial completes whatever its score.
            self.trial.set_user_attr(SCORES_ATTR, list(self.scores))
            if k + 1 < self.n_folds and _prunes(self.trial, self.multi) and self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {k + 1} of {self.n_folds}")

    def record(self) -> float:
        return _record(self.trial, self.curves, self.started, self.n_params,
                       self.alone_seconds if self.in_population else None)

    def failed(self, exc: BaseException) -> TrialFailed:
        """Record a failure of this trial; the error to raise (the study goes on)."""
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if not isinstance(exc, TrialFailed):
            reason = f"{type(exc).__name__}: {reason}"
        self.trial.set_user_attr("fail_reason", reason)
        self.record()
        return TrialFailed(reason)


def fold_synonyms(split: EncodedSplit, words: dict[str, list[str]] | None) -> dict[int, list[int]] | None:
    """A word -> synonyms table as the split's token ids, for text augmentation."""
    if not words or not hasattr(split.preprocessor, "token_id"):
        return None
    return synonym_ids(words, split.preprocessor.token_id)


def split_meta(split: EncodedSplit, output_dim: int, task: str, kind: str = "table") -> ModelMeta:
    """What the network builder needs to know about a split's encoded samples."""
    return ModelMeta(output_dim=output_dim, task=task, kind=kind, **split.model_input())


def _most_epochs(space: Space, fixed: dict[str, Any]) -> int:
    """The most epochs any trial of the study can train: one step layout serves them all."""
    spec = space.get("max_epochs")
    if spec is None:
        return int(fixed.get("max_epochs", DEFAULTS["max_epochs"]))
    return int(max(spec.choices) if spec.choices else spec.high)


def _settled_loss(val_loss: list[float], best_epoch: int, window: int = 2) -> float:
    """The validation loss around the best epoch (median of a 5-epoch window): a recipe whose
    loss oscillates cannot win a tie on one lucky epoch."""
    around = val_loss[max(0, best_epoch - 1 - window):best_epoch + window]
    return float(np.median(around))


def _has_complete(trial: optuna.Trial) -> bool:
    return bool(trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def latency_ms(module: nn.Module, X: np.ndarray, device: torch.device, rows: int = 256, repeats: int = 7) -> float:
    """Median milliseconds of one forward pass over a fixed batch (the first `rows` rows)."""
    batch = torch.from_numpy(np.ascontiguousarray(X[:rows])).to(device)
    module.eval()
    timings = []
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)  # kernels run async
    with torch.inference_mode():
        module(batch)  # warm-up
        for _ in range(repeats):
            sync()
            started = time.perf_counter()
            module(batch)
            sync()
            timings.append(1000.0 * (time.perf_counter() - started))
    return float(np.median(timings))


def _prunes(trial: optuna.Trial, multi: bool) -> bool:
    # Asking a pruner that never prunes costs a storage read (~5 ms on PostgreSQL); so does one
    # that is switched off for this run (auto's pruner below its smallest budget).
    pruner = trial.study.pruner
    return not multi and not isinstance(pruner, optuna.pruners.NopPruner) and getattr(pruner, "active", True)


def _reporter(trial: optuna.Trial, curves: dict[str, list[float]], multi: bool = False,
              fold: int = 0, stride: int = 0):
    """Per-epoch callback: record the curve, report the score at step `fold * stride + epoch`,
    let the pruner decide. Optuna keeps no per-epoch values for several objectives: then only
    the curve is recorded."""
    prunes = _prunes(trial, multi)
    pruner = trial.study.pruner

    def on_epoch_end(epoch: int, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            curves.setdefault(key, []).append(value)
        if multi:
            return
        step = fold * stride + epoch
        trial.report(logs["val_score"], step)
        if prunes and may_prune(pruner, step, stride) and trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}" + (f" of fold {fold + 1}" if fold else ""))
    return on_epoch_end


def _record(trial: optuna.Trial, curves: dict, started: float, n_params: int,
            seconds: float | None = None) -> float:
    """Store the trial's curves, seconds (since `started`, unless given) and size; returns the
    seconds as stored."""
    seconds = round(time.monotonic() - started if seconds is None else seconds, 4)
    trial.set_user_attr("curves", curves)
    trial.set_user_attr("train_seconds", seconds)
    trial.set_user_attr("n_params", int(n_params))
    return seconds
