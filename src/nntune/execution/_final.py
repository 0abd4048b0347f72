"""The delivered model: the selected recipe's fold models averaged, or one refit on all rows.

`folds` trains the selected configuration once per fold of the search, each network early-
stopped on its own fold's validation rows, and averages their predictions (probabilities for
classification): the bagging AutoGluon delivers, and every member is a validated model. The
preprocessing is fitted once on all training rows, so the members share one input and the
ensemble is one network to save, export and distill. Where the search's folds read that same
encoding (data.encode_folds), the trials' own fold models were kept (search/_kept.py) and are
delivered as they are: nothing is trained twice. `refit` retrains on all training rows with
exactly the trial's recipe: the same learning-rate schedule horizon (max_epochs), stopped at the
epoch early stopping chose; `training.ensemble` such refits with their own seeds, where the time
allows, are averaged. A refit that diverges, or that the time limit cuts short while the
trial's validated models are at hand, falls back to those.
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

from ..data import encode_split, encode_with, make_folds, row_positions, transform
from ..models import Ensemble
from ..search import KeptTrial, KeptTrials, best_first, fold_synonyms, make_module, split_meta
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
    members: list[dict[str, Any]] = field(default_factory=list)  # folds: the best trial's members' epochs, scores
    notes: list[str] = field(default_factory=list)  # what happened other than asked (a fallback, ...)
    selection: dict[str, Any] = field(default_factory=dict)  # folds: which trials the ensemble averages


def final_mode(plan: Plan, best: optuna.trial.FrozenTrial | None = None, n_fold_train: int | None = None) -> str:
    """`training.final` as this run applies it: auto is folds with cross-validation (members
    trained on 4/5 of the rows each, validated) and refit with one validation split (whose
    single model saw only 80% of the rows), and refit where a compress step prunes whole
    neurons (which takes one network). Data with its own split is refit: no folds exist.
    With one split and a time limit, auto refits only where the refit is cheap (see
    `refit_is_dear`), given the `best` trial so far."""
    cfg = plan.cfg
    if getattr(plan.table, "fixed_split", None) is not None:
        return "refit"
    if cfg.training.final == "auto":
        one_network = any(step.method == "prune" and step.structured for step in cfg.compress)
        if one_network:
            return "refit"
        return "folds" if cfg.search.cv or refit_is_dear(plan, best, n_fold_train) else "refit"
    return cfg.training.final


# Under `final: auto`, a refit that would take more than this share of the time limit is not
# made: the validated model is delivered and the search keeps that time. Where a trial takes a
# large share of the budget, the search has only a few trials (41,757 rows of beijing_pm25 at
# 60 s: one complete trial, its refit cut short by the clock), and a second trial buys more than
# 25% more rows for the first (benchmarks/tabular.py, docs/benchmarks.md).
REFIT_MAX_SHARE = 0.25


def refit_is_dear(plan: Plan, best: optuna.trial.FrozenTrial | None, n_fold_train: int | None = None) -> bool:
    """Whether one refit of `best` on all training rows would take more than REFIT_MAX_SHARE of
    the time limit, by the trial's own timing (`final_seconds`; `n_fold_train`: the rows a
    trial trained on, when the caller knows them)."""
    timeout = plan.cfg.search.timeout
    if best is None or timeout is None:
        return False
    n_fold_train = n_fold_train or len(plan.fold_rows()[0][0])
    return final_seconds(best, len(plan.train_rows), n_fold_train) > REFIT_MAX_SHARE * float(timeout)


def final_epochs(best: optuna.trial.FrozenTrial, max_epochs: int) -> int:
    """Epochs of a refit: the epoch early stopping chose, averaged over the trial's folds. Not
    scaled up for the larger training set: that only moved the refit further from the recipe
    that was validated."""
    return max(1, min(max_epochs, round(float(best.user_attrs.get("epochs", max_epochs)))))


# The fold models of runners-up (ensemble candidates) may take this share of a timeout at most.
ENSEMBLE_SHARE = 0.2


def final_seconds(best: optuna.trial.FrozenTrial, n_train: int, n_fold_train: int, mode: str = "refit",
                  runners_up: list[optuna.trial.FrozenTrial] = (), timeout: float | None = None,
                  kept: KeptTrials | None = None, seeds: int = 1) -> float:
    """What delivering the model will take, from the trials' own timings (kept free of the
    search): the best trial's fold trainings once more, and its runners-up' within a share;
    nothing for trials whose fold models were kept. A refit: once per seed, the seeds after
    the first within the same share."""
    def retrain(trial: optuna.trial.FrozenTrial) -> float:
        return 0.0 if kept is not None and trial.number in kept else float(trial.user_attrs.get("train_seconds", 1.0))

    seconds = float(best.user_attrs.get("train_seconds", 1.0))
    if mode == "folds":
        more = 1.1 * sum(retrain(t) for t in runners_up)
        return retrain(best) * 1.1 + 0.5 + (more if timeout is None else min(more, ENSEMBLE_SHARE * timeout))
    runs = best.user_attrs.get("epochs_run") or [1]
    per_epoch = seconds / max(1, sum(runs))
    one = per_epoch * float(best.user_attrs.get("epochs", 1)) * n_train / max(1, n_fold_train)
    extra = seeds - 1
    if timeout is not None:
        # Whole refits only: `train_final` starts another seed only where one fits, so the part
        # of a share that holds no whole refit would be left unused (a quarter of a minute's
        # budget on the largest development table).
        extra = min(extra, int(ENSEMBLE_SHARE * timeout // max(1.1 * one, 1e-9)))
    return one + 0.5 + 1.1 * one * extra


def deliver(plan: Plan, study: optuna.Study, best: optuna.trial.FrozenTrial, device: torch.device,
            deadline: float | None) -> FinalModel:
    """The run's model for its best trial, as `training.final` asks; with folds, the best
    trial's fold models and, where greedy selection finds that they help, those of the next
    best trials."""
    params = {**plan.fixed, **best.params}
    max_epochs = int(params["max_epochs"])
    if final_mode(plan, best) == "folds":
        trials = [best, *runners_up(plan, study, best)]
        model = train_folds(plan, [{**plan.fixed, **t.params} for t in trials], device, deadline,
                            [t.number for t in trials], [float(t.user_attrs.get("train_seconds", 0.0)) for t in trials])
        if final_mode(plan) == "refit":  # auto would have refit, but the refit is dear
            model.notes.append("a refit on all training rows would take more than a quarter of the time limit; "
                               "delivered the validated model of the best trial(s) instead")
            log.info(model.notes[-1])
        return model
    try:
        model = train_final(plan.table, plan.train_rows, plan.test_rows, params, final_epochs(best, max_epochs),
                            plan.model, device, plan.cfg.seed, deadline, plan.pretrained, plan.synonym_words(),
                            horizon=max_epochs, seeds=refit_seeds(plan))
    except TrainingDiverged as exc:
        model = train_folds(plan, [params], device, deadline, [best.number])
        model.notes.append(f"the refit on all training rows diverged ({exc}); delivered the validated fold "
                           "models instead")
        log.warning(model.notes[-1])
        return model
    if model.epochs < model.planned_epochs and plan.kept is not None and best.number in plan.kept:
        # A refit stopped early by the clock follows no recipe that was validated; the trial's
        # own early-stopped models, at hand, are.
        validated = train_folds(plan, [params], device, None, [best.number])
        validated.notes.append(f"the time limit cut the refit on all training rows short after {model.epochs} of "
                               f"{model.planned_epochs} epochs; delivered the best trial's validated model instead")
        log.warning(validated.notes[-1])
        return validated
    return model


def runners_up(plan: Plan, study: optuna.Study, best: optuna.trial.FrozenTrial) -> list[optuna.trial.FrozenTrial]:
    """The next best complete trials (distinct configurations, best first), up to
    `training.ensemble` with the best; none with several objectives (their best is a trade-off)."""
    if plan.objectives is not None and (plan.objectives.multi or plan.objectives.constraints):
        return []
    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.number != best.number and t.value is not None and np.isfinite(t.value)]
    done.sort(key=best_first(plan.metric.direction))
    seen, chosen = [best.params], []
    for trial in done:
        if len(chosen) + 1 >= plan.cfg.training.ensemble:
            break
        if trial.params not in seen:
            seen.append(trial.params)
            chosen.append(trial)
    return chosen


def train_final(table: Any, train_rows: np.ndarray, test_rows: np.ndarray, params: dict[str, Any], epochs: int,
                source: ModelSource, device: torch.device, seed: int, deadline: float | None,
                pretrained: dict[str, torch.Tensor] | None = None,
                synonym_words: dict[str, list[str]] | None = None, horizon: int | None = None,
                seeds: int = 1) -> FinalModel:
    """Retrain `params` on all training rows for `epochs` (the schedule spanning `horizon`),
    then score the test rows once. With `seeds` > 1, the recipe is retrained with seeds seed,
    seed + 1, ... while the deadline leaves time for one more as long as the first took, and
    the networks' predictions are averaged (a deep ensemble, Lakshminarayanan et al. 2017): one
    that diverges or that the deadline cuts short is left out. The training matrix is freed
    before the test rows are encoded, so a large table is never held twice."""
    final = encode_split(table, train_rows, None)
    head = make_head(table.task, final.y_train, len(table.classes), params)
    meta = split_meta(final, head.output_dim, table.task, data_kind(table))
    members: list[nn.Module] = []
    records: list[dict[str, Any]] = []
    used, took = params, 0.0
    for i in range(seeds):
        if i and (records[0]["epochs_run"] < epochs
                  or deadline is not None and time.monotonic() + 1.1 * took > deadline):
            break
        started = time.monotonic()
        torch.manual_seed(seed + i)
        module, used = make_module(source, params, meta)
        # A curriculum paces over max_epochs, as in the trials, whatever the final number of epochs.
        extras = prepare_fit(module, used, final.X_train, final.y_train, task=table.task,
                             n_classes=len(table.classes), epochs=int(used["max_epochs"]), device=device,
                             seed=seed + i, pretrained=pretrained, X_unlabeled=final.X_unlabeled,
                             difficulty=final.difficulty, kind=data_kind(table),
                             synonyms=fold_synonyms(final, synonym_words))
        try:
            trained = fit(module, head, final.X_train, final.y_train, used, epochs=epochs, horizon=horizon,
                          device=device, seed=seed + i, deadline=deadline, **extras)
        except TrainingDiverged:
            if not i:
                raise
            continue
        if i and trained.epochs_run < epochs:
            continue
        members.append(module.eval())
        records.append({"seed": seed + i, "epochs": epochs, "epochs_run": trained.epochs_run,
                        "stop_reason": trained.stop_reason})
        took = took or time.monotonic() - started
    final.X_train = None
    module = _combined(members, head, None, None, None)
    test_scores = _test_scores(module, head, final.preprocessor, table, test_rows, device)
    selection: dict[str, Any] = {}
    if len(members) > 1:
        selection = {"seeds": [r["seed"] for r in records], "configs": [used], "member_config": [0] * len(members),
                     "test_best_trial": _test_scores(members[0], head, final.preprocessor, table, test_rows, device)}
    return FinalModel(module, used, head, final.preprocessor, test_scores, meta, mode="refit",
                      planned_epochs=epochs, epochs=records[0]["epochs_run"], stop_reason=records[0]["stop_reason"],
                      members=records if len(members) > 1 else [], selection=selection)


def refit_seeds(plan: Plan) -> int:
    """How many refits of the recipe the delivered model averages: `training.ensemble` where
    `final: auto` chose the refit; one where the user asked for a refit (`--final refit`, the
    way to one network) or a compress step prunes whole neurons (which takes one network)."""
    one_network = any(step.method == "prune" and step.structured for step in plan.cfg.compress)
    return 1 if one_network or plan.cfg.training.final == "refit" else plan.cfg.training.ensemble


@dataclass
class FoldModels:
    """One configuration trained on every fold: its members, what each member predicted for its
    own fold's validation rows (out of fold, in training-matrix order), and their records."""

    params: dict[str, Any]
    members: list[nn.Module]
    out_of_fold: np.ndarray
    covered: np.ndarray  # rows some member validated on (all of them with k folds)
    records: list[dict[str, Any]]
    # Regression: each member's output mapped to the delivered head's target scale (see Ensemble).
    scales: list[float] = field(default_factory=list)
    shifts: list[float] = field(default_factory=list)


def train_folds(plan: Plan, configs: list[dict[str, Any]], device: torch.device,
                deadline: float | None, numbers: list[int] | None = None,
                seconds: list[float] | None = None) -> FinalModel:
    """Each configuration (the best first) trained on each of the search's folds, every member
    early-stopped on its fold's validation rows; then greedy ensemble selection over their
    out-of-fold predictions decides which configurations the delivered model averages.
    Preprocessing and head are fitted on all training rows, so every member reads the same
    input. A configuration whose trial (`numbers`) left its fold models in `plan.kept` is
    delivered with those, untrained again. The deadline keeps what is finished by then (at
    least the best one's first member); a runner-up starts only if its trial's `seconds` fit
    before it."""
    table, cfg = plan.table, plan.cfg
    kept = plan.kept
    final = encode_with(table, kept.preprocessor, plan.train_rows) if kept is not None else \
        encode_split(table, plan.train_rows, None)
    head = make_head(table.task, final.y_train, len(table.classes), configs[0])
    meta = split_meta(final, head.output_dim, table.task, data_kind(table))
    position = row_positions(plan.train_rows)
    folds = [(position(tr), position(va))
             for tr, va in make_folds(table, plan.train_rows, cfg.search.cv, cfg.data.val_size, cfg.seed)]
    synonyms = fold_synonyms(final, plan.synonym_words())
    trained: list[FoldModels] = []
    for i, params in enumerate(configs):
        stored = kept.get(numbers[i]) if kept is not None and numbers else None
        if stored is not None:
            trained.append(_from_kept(stored, head, device))
            continue
        expected = 1.1 * seconds[i] if seconds else 0.0
        if trained and deadline is not None and time.monotonic() + expected > deadline:
            break
        try:
            trained.append(_train_one(plan, params, final, head, meta, folds, synonyms, device, deadline))
        except TrainingDiverged:
            if not trained:
                raise
    best = trained[0]
    notes = [] if len(best.members) == len(folds) else [
        f"the time limit left {len(best.members)} of {len(folds)} fold models; delivered those"]
    counts = select_ensemble([t.out_of_fold[best.covered] for t in trained], final.y_train[best.covered],
                             plan.metric, _tie_breaker(table.task))
    numbers = numbers or list(range(len(configs)))
    chosen = [(t, c) for t, c in zip(trained, counts, strict=True) if c]
    chosen_numbers = [n for n, c in zip(numbers, counts, strict=False) if c]
    members, weights, config_of, scales, shifts = [], [], [], [], []
    for i, (t, count) in enumerate(chosen):
        for j, member in enumerate(t.members):
            members.append(member)
            weights.append(count / sum(counts) / len(t.members))
            config_of.append(i)
            scales.append(t.scales[j] if t.scales else 1.0)
            shifts.append(t.shifts[j] if t.shifts else 0.0)
    module = _combined(members, head, weights, scales, shifts)
    X_test = torch.from_numpy(transform(final.preprocessor, table.features, plan.test_rows)).to(device)
    y_test = table.y[plan.test_rows]
    test_scores = score_all(table.task, y_test, head.scores(predict_outputs(module, X_test)))
    selection = {"candidates": len(trained), "trials": chosen_numbers, "configs": [t.params for t, _ in chosen],
                 "counts": [c for _, c in chosen], "member_config": config_of,
                 "validation": {"best_trial": plan.metric(final.y_train[best.covered], best.out_of_fold[best.covered]),
                                "ensemble": plan.metric(final.y_train[best.covered], _mix(
                                    [t.out_of_fold[best.covered] for t in trained], counts))}}
    if len(chosen) > 1 or chosen[0][0] is not best:
        alone = _combined(best.members, head, None, best.scales or None, best.shifts or None)
        selection["test_best_trial"] = score_all(table.task, y_test, head.scores(predict_outputs(alone, X_test)))
    final.X_train = None
    for note in notes:
        log.warning(note)
    epochs = round(float(np.mean([r["epochs"] for r in best.records])))
    return FinalModel(module, chosen[0][0].params, head, final.preprocessor, test_scores, meta, mode="folds",
                      planned_epochs=int(best.params["max_epochs"]), epochs=epochs,
                      stop_reason=best.records[-1]["stop_reason"], members=best.records, notes=notes,
                      selection=selection)


def _combined(members: list[nn.Module], head: Any, weights: list[float] | None, scales: list[float] | None,
              shifts: list[float] | None) -> nn.Module:
    """One network of `members`: an Ensemble, or the member itself when it is alone as it is."""
    mapped = head.task == "regression" and scales is not None
    ensemble = Ensemble(members, combine_for(head), weights, *((scales, shifts) if mapped else (None, None)))
    return members[0] if len(members) == 1 and not ensemble.rescaled else ensemble


def _from_kept(stored: KeptTrial, head: Any, device: torch.device) -> FoldModels:
    """A kept trial's fold models as members of the delivered model, each member's output put
    on `head`'s target scale (a fold's own head standardised by its fold's targets)."""
    scales, shifts = [], []
    if head.task == "regression":
        scales = [h.y_std / head.y_std for h in stored.heads]
        shifts = [(h.y_mean - head.y_mean) / head.y_std for h in stored.heads]
    return FoldModels(stored.params, [m.to(device).eval() for m in stored.members], stored.out_of_fold,
                      stored.covered, stored.records, scales, shifts)


def _train_one(plan: Plan, params: dict[str, Any], final: Any, head: Any, meta: Any, folds: list, synonyms: Any,
               device: torch.device, deadline: float | None) -> FoldModels:
    table, seed = plan.table, plan.cfg.seed
    n = len(final.y_train)
    # What head.scores returns: values (n,), or probabilities (n, classes; two for BCE).
    out_of_fold = np.zeros(n) if head.task == "regression" else np.zeros((n, max(2, len(table.classes))))
    covered = np.zeros(n, dtype=bool)
    members, records, used = [], [], dict(params)
    for k, (tr, va) in enumerate(folds):
        if members and deadline is not None and time.monotonic() > deadline:
            break
        torch.manual_seed(seed + k)
        module, used = make_module(plan.model, params, meta)
        extras = prepare_fit(module, used, final.X_train[tr], final.y_train[tr], task=table.task,
                             n_classes=len(table.classes), epochs=int(used["max_epochs"]), device=device,
                             seed=seed + k, pretrained=plan.pretrained, X_unlabeled=final.X_unlabeled,
                             difficulty=final.difficulty[tr] if final.difficulty is not None else None,
                             kind=data_kind(table), synonyms=synonyms)
        result = fit(module, head, final.X_train[tr], final.y_train[tr], used, X_val=final.X_train[va],
                     y_val=final.y_train[va], metric=plan.metric, device=device, seed=seed + k,
                     deadline=deadline, **extras)
        members.append(module.eval())
        X_val = torch.from_numpy(final.X_train[va]).to(device)
        out_of_fold[va] = head.scores(predict_outputs(module, X_val))
        covered[va] = True
        records.append({"fold": k, "epochs": result.best_epoch, "epochs_run": result.epochs_run,
                        "score": result.best_score, "stop_reason": result.stop_reason})
    return FoldModels(used, members, out_of_fold, covered, records)


# Greedy ensemble selection with replacement (Caruana et al., 2004, as AutoGluon does it):
# written here since it is a few lines over predictions nntune already holds.
ENSEMBLE_ROUNDS = 25


def select_ensemble(predictions: list[np.ndarray], y: np.ndarray, metric: Any,
                    tie_breaker: Any = None, rounds: int = ENSEMBLE_ROUNDS) -> list[int]:
    """How often each candidate enters the average: start from the best alone, then add (with
    replacement) whichever candidate most improves the averaged predictions' `metric`, ties
    broken by `tie_breaker` (a smooth metric: log loss or RMSE), keeping the best ensemble seen."""
    sign = 1.0 if metric.direction == "maximize" else -1.0

    def quality(counts: list[int]) -> tuple[float, float]:
        mixed = _mix(predictions, counts)
        smooth = -tie_breaker(y, mixed) if tie_breaker is not None else 0.0
        return sign * metric(y, mixed), smooth

    counts = [1] + [0] * (len(predictions) - 1)
    best_counts, best_quality = list(counts), quality(counts)
    for _ in range(rounds if len(predictions) > 1 else 0):
        trials = []
        for i in range(len(predictions)):
            candidate = list(counts)
            candidate[i] += 1
            trials.append((quality(candidate), -i, candidate))
        q, _, counts = max(trials)
        if q > best_quality:
            best_counts, best_quality = list(counts), q
    return best_counts


def _mix(predictions: list[np.ndarray], counts: list[int]) -> np.ndarray:
    total = sum(counts)
    return sum(c / total * p for c, p in zip(counts, predictions, strict=True) if c)


def _tie_breaker(task: str) -> Any:
    from ..training import get_metric

    smooth = get_metric("rmse" if task == "regression" else "log_loss", task)
    return lambda y, p: smooth(y, p)


def combine_for(head: Any) -> str:
    """How an ensemble averages what this head reads: probabilities (softmax or sigmoid), or values."""
    if head.task == "regression":
        return "mean"
    return "sigmoid" if head.loss == "bce" else "softmax"


def _test_scores(module: nn.Module, head: Any, preprocessor: Any, table: Any, rows: np.ndarray,
                 device: torch.device) -> dict[str, float]:
    X_test = torch.from_numpy(transform(preprocessor, table.features, rows)).to(device)
    return score_all(table.task, table.y[rows], head.scores(predict_outputs(module, X_test)))
