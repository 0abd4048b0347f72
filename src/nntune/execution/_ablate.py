"""Ablation: retrain the best configuration with one technique switched off at a time, on the
same k folds and seeds, to see which parts of the tuned recipe carry the score.

Both arms train the way a tuned trial trains (`prepare_fit`, then `fit`): pretrained weights,
autoencoder pretraining, the curriculum and augmentation are applied in each, so switching one
of them off measures it. A fit that breaks (training raises TrialFailed: the loss diverged) is
kept as a failure and counted as the worst score of its (seed, fold), never dropped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..data import EncodedSplit
from ..errors import TrialFailed
from ..search import fold_synonyms, make_module, split_meta
from ..training import TrainingDiverged, difficulty_from_loss, fit, make_head, predict_outputs, prepare_fit
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
    Technique("augmentation", lambda p: bool(p.get("augment")), lambda p: {"augment": False},
              "no data augmentation"),
    Technique("numerical_embeddings", lambda p: p.get("embedding", "none") != "none",
              lambda p: {"embedding": "none"}, "numeric columns fed as they are"),
    Technique("tabm_members", lambda p: int(p.get("k", 1)) > 1, lambda p: {"k": 1}, "one network (k 1)"),
)

# What training raises when a recipe cannot be trained: that is the variant's effect. Anything
# else (a TypeError, a KeyError) is a bug in nntune and must surface, not become a score.
TRAINING_FAILURES: tuple[type[BaseException], ...] = (TrialFailed, torch.OutOfMemoryError)

# How a failed fit is scored, for the report to say.
FAILURE_SCORE = ("a fit that breaks (training diverged or failed) counts as the worst score of its seed and fold: "
                 "the worse of a no-skill model's (the training rows' class frequencies, or their mean) and "
                 "every other fit's there")


@dataclass
class Ablated:
    technique: str
    applicable: bool
    what: str
    changes: dict[str, Any] = field(default_factory=dict)
    # One per (seed, fold), in the base's order; a failed fit is counted as the worst score.
    scores: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    failures: list[str | None] = field(default_factory=list)  # why each fit broke; None: it trained

    @property
    def failed(self) -> int:
        return sum(reason is not None for reason in self.failures)


# Early stopping watches a slice of each training fold, never the fold's validation rows:
# those only score, so that a stopped and an unstopped recipe are judged alike.
INNER_SHARE = 0.15


def inner_split(n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (watched, trained) rows of a training fold for one seed: the same in every arm."""
    inner = np.random.default_rng(seed).permutation(n_rows)
    cut = max(1, int(INNER_SHARE * len(inner)))
    return inner[:cut], inner[cut:]


@dataclass
class Shared:
    """What every arm uses alike, made once: each fold's synonym table (in the fold's own token
    ids) and the loss-based curriculum's scores of each (seed, fold)'s trained rows (two
    reference networks each), so that arms differ only in the technique switched off."""

    plan: Plan
    device: torch.device
    words: dict[str, list[str]] | None = None
    cache: dict[tuple, Any] = field(default_factory=dict)

    def synonyms(self, k: int, fold: EncodedSplit) -> dict[int, list[int]] | None:
        key = ("synonyms", k)
        if key not in self.cache:
            self.cache[key] = fold_synonyms(fold, self.words)
        return self.cache[key]

    def difficulty(self, seed: int, k: int, fold: EncodedSplit, rows: np.ndarray,
                   params: dict[str, Any]) -> np.ndarray | None:
        if fold.difficulty is not None:
            return fold.difficulty[rows]
        if params.get("curriculum", "none") not in ("easy_first", "hard_first"):
            return None  # no curriculum, or the random one: nothing to score
        key = ("difficulty", seed, k, params.get("loss"), params.get("class_weight"))
        if key not in self.cache:
            table = self.plan.table
            self.cache[key] = difficulty_from_loss(fold.X_train[rows], fold.y_train[rows], table.task,
                                                   len(table.classes), params, seed=seed, device=self.device)
        return self.cache[key]


def fit_and_score(shared: Shared, k: int, fold: EncodedSplit, params: dict[str, Any], seed: int) -> float:
    """Train `params` on fold k as a tuned trial trains (prepare_fit, then fit), early stopping
    on a slice of the training rows; returns the score on the fold's validation rows. Raises
    what training raises when the recipe cannot be trained (TRAINING_FAILURES)."""
    plan, device, table = shared.plan, shared.device, shared.plan.table
    watch, train = inner_split(len(fold.y_train), seed)
    X, y = fold.X_train[train], fold.y_train[train]
    torch.manual_seed(seed)
    head = make_head(table.task, y, len(table.classes), params)
    module, _ = make_module(plan.model, params, split_meta(fold, head.output_dim, table.task, data_kind(table)))
    extras = prepare_fit(module, params, X, y, task=table.task, n_classes=len(table.classes),
                         epochs=int(params["max_epochs"]), device=device, seed=seed, pretrained=plan.pretrained,
                         X_unlabeled=fold.X_unlabeled, difficulty=shared.difficulty(seed, k, fold, train, params),
                         kind=data_kind(table), synonyms=shared.synonyms(k, fold))
    fit(module, head, X, y, params, X_val=fold.X_train[watch], y_val=fold.y_train[watch], metric=plan.metric,
        device=device, seed=seed, **extras)
    outputs = predict_outputs(module, torch.from_numpy(fold.X_eval).to(device))
    score = plan.metric(fold.y_eval, head.scores(outputs))
    if not math.isfinite(score):
        raise TrainingDiverged(f"validation {plan.metric.name} is {score} after training")
    return score


def evaluate(shared: Shared, folds: list[EncodedSplit], params: dict[str, Any],
             seeds: list[int]) -> tuple[list[float], list[float], list[str | None]]:
    """Validation score, training seconds and failure (None: trained) of `params` for every
    (seed, fold). A failed fit scores NaN here; `count_failures_as_worst` scores it."""
    scores, seconds, failures = [], [], []
    for seed in seeds:
        for k, fold in enumerate(folds):
            started = time.monotonic()
            try:
                shared.difficulty(seed, k, fold, inner_split(len(fold.y_train), seed)[1], params)
                started = time.monotonic()  # curriculum scores made once for all arms: no arm's time
                scores.append(float(fit_and_score(shared, k, fold, params, seed)))
                failures.append(None)
            except TRAINING_FAILURES as exc:
                scores.append(math.nan)
                failures.append(_reason(exc))
            seconds.append(time.monotonic() - started)
    return scores, seconds, failures


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def no_skill_score(plan: Plan, fold: EncodedSplit) -> float:
    """The fold's validation score of a model that learned nothing: the training rows' class
    frequencies (classification) or mean (regression) for every row."""
    n = len(fold.y_eval)
    if plan.table.task == "regression":
        predicted = np.full(n, float(np.mean(fold.y_train)))
    else:
        counts = np.bincount(fold.y_train.astype(np.int64), minlength=len(plan.table.classes))
        predicted = np.tile(counts / counts.sum(), (n, 1))
    return plan.metric(fold.y_eval, predicted)


def count_failures_as_worst(arms: list[Ablated], floor: list[float], direction: str) -> None:
    """Give each failed fit the worst score of its (seed, fold): the worse of `floor` (the
    no-skill score) and every fit of any arm there. In place."""
    worst = min if direction == "maximize" else max
    for i, bound in enumerate(floor):
        trained = [arm.scores[i] for arm in arms if arm.failures[i] is None and not math.isnan(arm.scores[i])]
        value = worst([bound, *trained]) if not math.isnan(bound) else worst(trained, default=math.nan)
        for arm in arms:
            if arm.failures[i] is not None:
                arm.scores[i] = value


def ablate(plan: Plan, params: dict[str, Any], seeds: list[int], device: torch.device,
           techniques: list[str] | None = None,
           on_step: Callable[[str], None] | None = None) -> tuple[Ablated, list[Ablated]]:
    """The base configuration and each technique switched off, on the plan's folds."""
    folds = plan.folds()
    shared = Shared(plan, device, plan.synonym_words())
    chosen = [t for t in TECHNIQUES if techniques is None or t.name in techniques]
    base = Ablated("none (the tuned configuration)", True, "as tuned")
    base.scores, base.seconds, base.failures = evaluate(shared, folds, params, seeds)
    results = []
    for technique in chosen:
        if not technique.applies(params):
            results.append(Ablated(technique.name, False, "not in this configuration"))
            continue
        if on_step is not None:
            on_step(technique.name)
        changes = technique.switch_off(params)
        row = Ablated(technique.name, True, technique.what, changes)
        row.scores, row.seconds, row.failures = evaluate(shared, folds, {**params, **changes}, seeds)
        results.append(row)
    floor = [no_skill_score(plan, fold) for _ in seeds for fold in folds]
    count_failures_as_worst([base, *(r for r in results if r.applicable)], floor, plan.metric.direction)
    return base, results


def paired_effect(base: list[float], other: list[float]) -> tuple[float, float, int]:
    """Mean of other - base over the pairs both scored, the half-width of its 95% confidence
    interval (Student's t), and the number of pairs. A pair is left out only when a score is
    undefined (NaN: e.g. ROC AUC on a fold of one class); failed fits were scored before."""
    from scipy import stats

    diffs = np.array([o - b for b, o in zip(base, other, strict=True) if not (math.isnan(b) or math.isnan(o))])
    if len(diffs) == 0:
        return math.nan, math.nan, 0
    if len(diffs) == 1:
        return float(diffs[0]), math.nan, 1
    half = stats.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / math.sqrt(len(diffs))
    return float(diffs.mean()), float(half), len(diffs)
