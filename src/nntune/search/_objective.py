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
from ._cv_pruning import FOLDS_ATTR, SCORES_ATTR, STRIDE_ATTR, fold_stride
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
        started = time.monotonic()
        deadline = self.trial_deadline(started, not _has_complete(trial))
        params = suggest(trial, self.space, self.fixed)
        curves: dict[str, list[float]] = {}
        scores, epochs, stops, runs, losses = [], [], [], [], []
        members, heads, predictions = [], [], []  # for self.keep
        n_params = 0
        # With folds, fold k's epoch e is step k * stride + e: every fold's curve is reported
        # without two folds sharing a step, and fold 0 keeps plain epoch numbers.
        cv = len(self.folds) > 1
        stride = fold_stride(_most_epochs(self.space, self.fixed))
        if cv:
            trial.set_user_attr(STRIDE_ATTR, stride)
            trial.set_user_attr(FOLDS_ATTR, len(self.folds))
        try:
            for k, fold in enumerate(self.folds):
                if k and deadline is not None and time.monotonic() > deadline:
                    break
                torch.manual_seed(self.seed + trial.number)
                head = make_head(self.task, fold.y_train, self.n_classes, params)
                meta = split_meta(fold, head.output_dim, self.task, self.kind)
                module, params = make_module(self.model, params, meta, trial if k == 0 else None)
                n_params = count_parameters(module)
                extras = prepare_fit(
                    module, params, fold.X_train, fold.y_train, task=self.task, n_classes=self.n_classes,
                    epochs=int(params["max_epochs"]), device=self.device, seed=self.seed + trial.number,
                    pretrained=self.pretrained, X_unlabeled=fold.X_unlabeled,
                    difficulty=self.difficulty(k, fold, params), kind=self.kind,
                    synonyms=self.synonyms(fold))
                result = fit(
                    module, head, fold.X_train, fold.y_train, params,
                    X_val=fold.X_eval, y_val=fold.y_eval, metric=self.metric,
                    on_epoch_end=_reporter(trial, curves if k == 0 else {}, self.multi, k, stride),
                    deadline=deadline, device=self.device, seed=self.seed + trial.number, **extras,
                )
                scores.append(result.best_score)
                epochs.append(result.best_epoch)
                stops.append(result.stop_reason)
                runs.append(result.epochs_run)
                losses.append(_settled_loss(result.history["val_loss"], result.best_epoch))
                if k == 0:
                    curves = result.history
                if self.keep is not None:
                    with torch.inference_mode():
                        X_eval = torch.from_numpy(np.ascontiguousarray(fold.X_eval)).to(self.device)
                        predictions.append(head.scores(predict_outputs(module, X_eval)))
                    members.append(module)
                    heads.append(head)
                if cv:
                    # Finished folds, for the pruner to weigh this trial against the best one
                    # between folds; after the last fold the trial completes whatever its score.
                    trial.set_user_attr(SCORES_ATTR, list(scores))
                    if k + 1 < len(self.folds) and _prunes(trial, self.multi) and trial.should_prune():
                        raise optuna.TrialPruned(f"pruned after fold {k + 1} of {len(self.folds)}")
        except optuna.TrialPruned:
            _record(trial, curves, started, n_params)
            raise
        except Exception as exc:  # any failure ends this trial only; the study goes on
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if not isinstance(exc, TrialFailed):
                reason = f"{type(exc).__name__}: {reason}"
            trial.set_user_attr("fail_reason", reason)
            _record(trial, curves, started, n_params)
            raise TrialFailed(reason) from exc
        seconds = _record(trial, curves, started, n_params)
        trial.set_user_attr("fold_scores", scores)
        trial.set_user_attr("score_std", float(np.std(scores)) if len(scores) > 1 else None)
        trial.set_user_attr("val_loss", float(np.mean(losses)))
        trial.set_user_attr("best_epochs", epochs)
        trial.set_user_attr("epochs", float(np.mean(epochs)))
        trial.set_user_attr("stop_reasons", stops)
        trial.set_user_attr("epochs_run", runs)
        if len(scores) < len(self.folds) and _has_complete(trial):
            # Cut short by the time budget: not comparable with fully evaluated trials. When it
            # is the only one, its folds still give the run a model within the budget.
            raise optuna.TrialPruned("ran out of time before every fold was trained")
        if self.objectives is None or not self.objectives.multi and not self.objectives.constraints:
            if self.keep is not None:
                records = [{"fold": k, "epochs": e, "epochs_run": r, "score": v, "stop_reason": why}
                           for k, (e, r, v, why) in enumerate(zip(epochs, runs, scores, stops, strict=True))]
                self.keep.offer(trial.number, float(np.mean(scores)), float(np.mean(losses)), params, members,
                                heads, predictions, records)
            return float(np.mean(scores))
        # The same numbers as the trial's attributes, which constraints are checked against later.
        attrs = {"n_params": n_params, "train_seconds": seconds,
                 "latency_ms": latency_ms(module, self.folds[-1].X_eval, self.device)}
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

    def on_epoch_end(epoch: int, logs: dict[str, float]) -> None:
        for key, value in logs.items():
            curves.setdefault(key, []).append(value)
        if multi:
            return
        trial.report(logs["val_score"], fold * stride + epoch)
        if prunes and trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}" + (f" of fold {fold + 1}" if fold else ""))
    return on_epoch_end


def _record(trial: optuna.Trial, curves: dict, started: float, n_params: int) -> float:
    """Store the trial's curves, seconds and size; returns the seconds as stored."""
    seconds = round(time.monotonic() - started, 4)
    trial.set_user_attr("curves", curves)
    trial.set_user_attr("train_seconds", seconds)
    trial.set_user_attr("n_params", int(n_params))
    return seconds
