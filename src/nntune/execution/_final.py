"""The delivered model: the selected recipe's fold models averaged, or one refit on all rows.

`folds` trains the selected configuration once per fold of the search, each network early-
stopped on its own fold's validation rows, and averages their predictions (probabilities for
classification): the bagging AutoGluon delivers, and every member is a validated model. The
preprocessing is fitted once on all training rows, so the members share one input and the
ensemble is one network to save, export and distill. `refit` retrains on all training rows
with exactly the trial's recipe: the same learning-rate schedule horizon (max_epochs), stopped
at the epoch early stopping chose. A refit that diverges falls back to the fold models.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import torch
from torch import nn

from ..data import encode_split, make_folds, transform
from ..models import Ensemble
from ..search import fold_synonyms, make_module, split_meta
from ..training import TrainingDiverged, fit, make_head, predict_outputs, prepare_fit, score_all
from ._plan import ModelSource, Plan, data_kind

FINALS = ("auto", "refit", "folds")
log = logging.getLogger("nntune")


@dataclass
class FinalModel:
    """The delivered network (one, or an Ensemble of fold members), its parameters, head,
    fitted preprocessing, test scores and shape description, and how it was trained."""

    module: nn.Module
    params: dict[str, Any]
    head: Any
    preprocessor: Any
    test_scores: dict[str, float]
    meta: Any
    mode: str  # refit or folds
    planned_epochs: int
    epochs: int  # refit: fewer than planned when the deadline cut it short; folds: the mean over members
    stop_reason: str
    members: list[dict[str, Any]] = field(default_factory=list)  # folds: each member's epochs and score
    notes: list[str] = field(default_factory=list)  # what happened other than asked (a fallback, ...)


def final_mode(plan: Plan) -> str:
    """`training.final` as this run applies it: auto is folds with cross-validation (members
    trained on 4/5 of the rows each, validated) and refit with one validation split (whose
    single model saw only 80% of the rows), and refit where a compress step prunes whole
    neurons (which takes one network). Data with its own split is refit: no folds exist."""
    cfg = plan.cfg
    if getattr(plan.table, "fixed_split", None) is not None:
        return "refit"
    if cfg.training.final == "auto":
        one_network = any(step.method == "prune" and step.structured for step in cfg.compress)
        return "folds" if cfg.search.cv and not one_network else "refit"
    return cfg.training.final


def final_epochs(best: optuna.trial.FrozenTrial, max_epochs: int) -> int:
    """Epochs of a refit: the epoch early stopping chose, averaged over the trial's folds. Not
    scaled up for the larger training set: that only moved the refit further from the recipe
    that was validated."""
    return max(1, min(max_epochs, round(float(best.user_attrs.get("epochs", max_epochs)))))


def final_seconds(best: optuna.trial.FrozenTrial, n_train: int, n_fold_train: int, mode: str = "refit") -> float:
    """What delivering the model will take, from the trial's own timings (kept free of the search)."""
    seconds = float(best.user_attrs.get("train_seconds", 1.0))
    if mode == "folds":  # the trial's fold trainings once more
        return seconds * 1.1 + 0.5
    runs = best.user_attrs.get("epochs_run") or [1]
    per_epoch = seconds / max(1, sum(runs))
    return per_epoch * float(best.user_attrs.get("epochs", 1)) * n_train / max(1, n_fold_train) + 0.5


def deliver(plan: Plan, best: optuna.trial.FrozenTrial, device: torch.device, deadline: float | None) -> FinalModel:
    """The run's model for its best trial, as `training.final` asks."""
    params = {**plan.fixed, **best.params}
    max_epochs = int(params["max_epochs"])
    mode = final_mode(plan)
    if mode == "folds":
        return train_folds(plan, params, device, deadline)
    try:
        return train_final(plan.table, plan.train_rows, plan.test_rows, params, final_epochs(best, max_epochs),
                           plan.model, device, plan.cfg.seed, deadline, plan.pretrained, plan.synonym_words(),
                           horizon=max_epochs)
    except TrainingDiverged as exc:
        model = train_folds(plan, params, device, deadline)
        model.notes.append(f"the refit on all training rows diverged ({exc}); delivered the validated fold "
                           "models instead")
        log.warning(model.notes[-1])
        return model


def train_final(table: Any, train_rows: np.ndarray, test_rows: np.ndarray, params: dict[str, Any], epochs: int,
                source: ModelSource, device: torch.device, seed: int, deadline: float | None,
                pretrained: dict[str, torch.Tensor] | None = None,
                synonym_words: dict[str, list[str]] | None = None, horizon: int | None = None) -> FinalModel:
    """Retrain `params` on all training rows for `epochs` (the schedule spanning `horizon`),
    then score the test rows once. The training matrix is freed before the test rows are
    encoded, so a large table is never held twice."""
    final = encode_split(table, train_rows, None)
    head = make_head(table.task, final.y_train, len(table.classes), params)
    torch.manual_seed(seed)
    meta = split_meta(final, head.output_dim, table.task, data_kind(table))
    module, params = make_module(source, params, meta)
    # A curriculum paces over max_epochs, as in the trials, whatever the final number of epochs.
    extras = prepare_fit(module, params, final.X_train, final.y_train, task=table.task,
                         n_classes=len(table.classes), epochs=int(params["max_epochs"]), device=device, seed=seed,
                         pretrained=pretrained, X_unlabeled=final.X_unlabeled, difficulty=final.difficulty,
                         kind=data_kind(table), synonyms=fold_synonyms(final, synonym_words))
    trained = fit(module, head, final.X_train, final.y_train, params, epochs=epochs, horizon=horizon,
                  device=device, seed=seed, deadline=deadline, **extras)
    final.X_train = None
    test_scores = _test_scores(module, head, final.preprocessor, table, test_rows, device)
    return FinalModel(module, params, head, final.preprocessor, test_scores, meta, mode="refit",
                      planned_epochs=epochs, epochs=trained.epochs_run, stop_reason=trained.stop_reason)


def train_folds(plan: Plan, params: dict[str, Any], device: torch.device, deadline: float | None) -> FinalModel:
    """The configuration trained on each of the search's folds, each member early-stopped on its
    fold's validation rows, averaged. Preprocessing and head are fitted on all training rows,
    so every member reads the same input. A deadline keeps the members finished by then (at
    least one)."""
    table, cfg = plan.table, plan.cfg
    final = encode_split(table, plan.train_rows, None)
    head = make_head(table.task, final.y_train, len(table.classes), params)
    meta = split_meta(final, head.output_dim, table.task, data_kind(table))
    position = _positions(plan.train_rows)
    synonyms = fold_synonyms(final, plan.synonym_words())
    folds = make_folds(table, plan.train_rows, cfg.search.cv, cfg.data.val_size, cfg.seed)
    members, used, records = [], dict(params), []
    for k, (train, val) in enumerate(folds):
        if members and deadline is not None and time.monotonic() > deadline:
            break
        tr, va = position(train), position(val)
        torch.manual_seed(cfg.seed + k)
        module, used = make_module(plan.model, params, meta)
        extras = prepare_fit(module, used, final.X_train[tr], final.y_train[tr], task=table.task,
                             n_classes=len(table.classes), epochs=int(used["max_epochs"]), device=device,
                             seed=cfg.seed + k, pretrained=plan.pretrained,
                             X_unlabeled=final.X_unlabeled,
                             difficulty=final.difficulty[tr] if final.difficulty is not None else None,
                             kind=data_kind(table), synonyms=synonyms)
        trained = fit(module, head, final.X_train[tr], final.y_train[tr], used, X_val=final.X_train[va],
                      y_val=final.y_train[va], metric=plan.metric, device=device, seed=cfg.seed + k,
                      deadline=deadline, **extras)
        members.append(module.eval())
        records.append({"fold": k, "epochs": trained.best_epoch, "epochs_run": trained.epochs_run,
                        "score": trained.best_score, "stop_reason": trained.stop_reason})
    final.X_train = None
    module = Ensemble(members, combine_for(head)) if len(members) > 1 else members[0]
    test_scores = _test_scores(module, head, final.preprocessor, table, plan.test_rows, device)
    notes = [] if len(members) == len(folds) else [
        f"the time limit left {len(members)} of {len(folds)} fold models; delivered those"]
    for note in notes:
        log.warning(note)
    epochs = round(float(np.mean([r["epochs"] for r in records])))
    return FinalModel(module, used, head, final.preprocessor, test_scores, meta, mode="folds",
                      planned_epochs=int(used["max_epochs"]), epochs=epochs,
                      stop_reason=records[-1]["stop_reason"], members=records, notes=notes)


def combine_for(head: Any) -> str:
    """How an ensemble averages what this head reads: probabilities (softmax or sigmoid), or values."""
    if head.task == "regression":
        return "mean"
    return "sigmoid" if head.loss == "bce" else "softmax"


def _test_scores(module: nn.Module, head: Any, preprocessor: Any, table: Any, rows: np.ndarray,
                 device: torch.device) -> dict[str, float]:
    X_test = torch.from_numpy(transform(preprocessor, table.features, rows)).to(device)
    return score_all(table.task, table.y[rows], head.scores(predict_outputs(module, X_test)))


def _positions(train_rows: np.ndarray):
    """Rows of the table -> their positions in the encoded training matrix (train_rows' order)."""
    order = np.argsort(train_rows, kind="stable")
    ordered = train_rows[order]

    def position(rows: np.ndarray) -> np.ndarray:
        return order[np.searchsorted(ordered, rows)]
    return position

