"""Ablation: retrain the best configuration with one technique switched off at a time, on the
same k folds and seeds, to see which parts of the tuned recipe carry the score."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..data import EncodedSplit
from ..search import make_module, split_meta
from ..training import fit, make_head, predict_outputs
from ._plan import Plan, data_kind


@dataclass(frozen=True)
class Technique:
    name: str
    applies: Callable[[dict[str, Any]], bool]
    switch_off: Callable[[dict[str, Any]], dict[str, Any]]
    what: str


def _positive(key: str) -> Callable[[dict[str, Any]], bool]:
    return lambda p: bool(p.get(key)) and float(p[key]) > 0


TECHNIQUES = (
    Technique("dropout", _positive("dropout"), lambda p: {"dropout": 0.0}, "dropout set to 0"),
    Technique("batch_norm", lambda p: p.get("norm") == "batch", lambda p: {"norm": "none"}, "no batch norm"),
    Technique("layer_norm", lambda p: p.get("norm") == "layer", lambda p: {"norm": "none"}, "no layer norm"),
    Technique("weight_norm", lambda p: p.get("norm") == "weight", lambda p: {"norm": "none"}, "no weight norm"),
    Technique("weight_decay", _positive("weight_decay"), lambda p: {"weight_decay": 0.0}, "weight decay 0"),
    Technique("l1", _positive("l1"), lambda p: {"l1": 0.0}, "no L1 penalty"),
    Technique("l2", _positive("l2"), lambda p: {"l2": 0.0}, "no L2 penalty"),
    Technique("early_stopping", lambda p: int(p.get("patience", 0)) < int(p.get("max_epochs", 0)),
              lambda p: {"patience": int(p["max_epochs"]) + 1, "restore_best": False},
              "all max_epochs, the last epoch's weights"),
    Technique("lr_schedule", lambda p: p.get("schedule", "constant") != "constant" or bool(p.get("warmup_epochs")),
              lambda p: {"schedule": "constant", "warmup_epochs": 0}, "constant learning rate"),
    Technique("gradient_clipping", lambda p: p.get("clip_norm") is not None or p.get("clip_value") is not None,
              lambda p: {"clip_norm": None, "clip_value": None}, "no clipping"),
    Technique("skip_connections", lambda p: bool(p.get("residual")), lambda p: {"residual": False},
              "no residual connections"),
    Technique("label_smoothing", _positive("label_smoothing"), lambda p: {"label_smoothing": 0.0},
              "no label smoothing"),
    Technique("mixup", _positive("mixup_alpha"), lambda p: {"mixup_alpha": 0.0}, "no mixup"),
    Technique("augmentation", lambda p: bool(p.get("augment")), lambda p: {"augment": None},
              "no data augmentation"),
)


@dataclass
class Ablated:
    technique: str
    applicable: bool
    what: str
    changes: dict[str, Any] = field(default_factory=dict)
    scores: list[float] = field(default_factory=list)  # one per (seed, fold), in the base's order
    seconds: list[float] = field(default_factory=list)


# Early stopping watches a slice of each training fold, never the fold's validation rows:
# those only score, so that a stopped and an unstopped recipe are judged alike.
INNER_SHARE = 0.15


def evaluate(plan: Plan, folds: list[EncodedSplit], params: dict[str, Any], seeds: list[int],
             device: torch.device) -> tuple[list[float], list[float]]:
    """Validation score and training seconds of `params` for every (seed, fold). A fit that
    diverges scores NaN."""
    scores, seconds = [], []
    table = plan.table
    metric = plan.metric
    for seed in seeds:
        for fold in folds:
            inner = np.random.default_rng(seed).permutation(len(fold.y_train))
            cut = max(1, int(INNER_SHARE * len(inner)))
            watch, train = inner[:cut], inner[cut:]
            torch.manual_seed(seed)
            head = make_head(table.task, fold.y_train[train], len(table.classes), params)
            module, _ = make_module(plan.model, params, split_meta(fold, head.output_dim, table.task, data_kind(table)))
            started = time.monotonic()
            try:
                fit(module, head, fold.X_train[train], fold.y_train[train], params, X_val=fold.X_train[watch],
                    y_val=fold.y_train[watch], metric=metric, device=device, seed=seed)
                outputs = predict_outputs(module, torch.from_numpy(fold.X_eval).to(device))
                score = metric(fold.y_eval, head.scores(outputs))
            except Exception:  # a recipe that diverges without its regulariser
                score = math.nan
            scores.append(float(score))
            seconds.append(time.monotonic() - started)
    return scores, seconds


def ablate(plan: Plan, params: dict[str, Any], seeds: list[int], device: torch.device,
           techniques: list[str] | None = None,
           on_step: Callable[[str], None] | None = None) -> tuple[Ablated, list[Ablated]]:
    """The base configuration and each technique switched off, on the plan's folds."""
    folds = plan.folds()
    chosen = [t for t in TECHNIQUES if techniques is None or t.name in techniques]
    base = Ablated("none (the tuned configuration)", True, "as tuned")
    base.scores, base.seconds = evaluate(plan, folds, params, seeds, device)
    results = []
    for technique in chosen:
        if not technique.applies(params):
            results.append(Ablated(technique.name, False, "not in this configuration"))
            continue
        if on_step is not None:
            on_step(technique.name)
        changes = technique.switch_off(params)
        row = Ablated(technique.name, True, technique.what, changes)
        row.scores, row.seconds = evaluate(plan, folds, {**params, **changes}, seeds, device)
        results.append(row)
    return base, results


def paired_effect(base: list[float], other: list[float]) -> tuple[float, float, int]:
    """Mean of other - base over the pairs both scored, the half-width of its 95% confidence
    interval (Student's t), and the number of pairs."""
    from scipy import stats

    diffs = np.array([o - b for b, o in zip(base, other, strict=True) if not (math.isnan(b) or math.isnan(o))])
    if len(diffs) == 0:
        return math.nan, math.nan, 0
    if len(diffs) == 1:
        return float(diffs[0]), math.nan, 1
    half = stats.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / math.sqrt(len(diffs))
    return float(diffs.mean()), float(half), len(diffs)
