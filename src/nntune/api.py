"""One function per user action. The CLI calls these and nothing else.

`tune` wires the pieces in the one direction data flows: config -> data -> space -> trials
(study) -> final model -> files.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch
from torch import nn

from . import __version__
from ._atomic import write_bytes, write_json, write_text
from .config import RunConfig, build_config, load_config, merge
from .data import TabularData, encode_split, load_tabular, make_folds, read_table, split_train_test, transform
from .errors import ConfigError, NntuneError, check_choice, did_you_mean
from .execution import Budget, pick_device, set_threads
from .models import ModelMeta, get_family
from .models import mlp as mlp_family
from .predictor import Predictor, load
from .reports import read_run
from .search import (
    HyperParameters,
    ModelSource,
    Objective,
    TrialCallback,
    best_trial,
    count_states,
    finished_trials,
    get_storage,
    make_module,
    make_pruner,
    make_sampler,
    open_study,
    resolve_space,
    run_trials,
    storage_url,
    trial_records,
)
from .training import DEFAULTS as RECIPE_DEFAULTS
from .training import (
    LOSSES,
    OPTIMIZERS,
    SCHEDULES,
    default_metric,
    fit,
    get_metric,
    make_head,
    predict_outputs,
    score_all,
)
from .training import SPACE as RECIPE_SPACE

BuildModel = Callable[[HyperParameters], nn.Module]

# Names whose values must come from a known list, checked before any trial runs.
KNOWN_CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "loss": LOSSES,
                 "activation": tuple(mlp_family.ACTIVATIONS), "init": mlp_family.INITS,
                 "norm": mlp_family.NORMS}

# Strong first trials, tried before the sampler takes over: the recipes that practitioners
# start from (Adam at 1e-3; SGD with momentum at 1e-2) on 1-2 hidden layers of moderate width.
STARTING_POINTS = (
    {"optimizer": "adam", "lr": 1e-3, "n_layers": 2, "units": 128, "activation": "relu",
     "dropout": 0.1, "norm": "none", "batch_size": 64, "schedule": "constant", "weight_decay": 1e-5},
    {"optimizer": "sgd", "lr": 1e-2, "momentum": 0.9, "n_layers": 1, "units": 256,
     "activation": "relu", "dropout": 0.0, "norm": "batch", "batch_size": 64,
     "schedule": "cosine", "weight_decay": 1e-4},
)


@dataclass
class TuneResult:
    """What `tune` returns: the study, the winner, its test scores and the trained model."""

    study: optuna.Study
    best_trial: optuna.trial.FrozenTrial
    best_params: dict[str, Any]
    best_value: float
    best_std: float | None  # across folds; None with a single validation split
    metric: str
    direction: str
    test_scores: dict[str, float]
    model: Predictor
    model_dir: Path
    run_dir: Path
    n_trials: dict[str, int]
    seconds: float
    storage: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "study": self.study.study_name, "best_params": self.best_params,
            "best_value": self.best_value, "best_std": self.best_std, "metric": self.metric,
            "direction": self.direction, "test_scores": self.test_scores,
            "model_dir": str(self.model_dir), "run_dir": str(self.run_dir),
            "storage": self.storage,
            "n_trials": self.n_trials, "seconds": round(self.seconds, 2), "data": self.data,
            "nntune_version": __version__,
        }


OPTION_NAMES = frozenset({
    "data", "dataset", "target", "task", "test_size", "val_size", "family", "max_epochs",
    "threads", "device", "patience", "strategy", "pruner", "trials", "timeout", "cv", "metric",
    "space", "space_mode", "storage", "study", "out", "resume", "seed"})


def make_config(config: str | Path | RunConfig | Mapping[str, Any] | None = None,
                **options: Any) -> RunConfig:
    """Build a RunConfig from a YAML path, dict or RunConfig plus option overrides
    (flat names as on the CLI: target, trials, strategy, ...). None means 'not given'."""
    options = {k: str(v) if isinstance(v, Path) else v for k, v in options.items()}
    overrides = {
        "data": {"path": options.get("data"), "dataset": options.get("dataset"),
                 "target": options.get("target"), "task": options.get("task"),
                 "test_size": options.get("test_size"), "val_size": options.get("val_size")},
        "model": {"family": options.get("family")},
        "training": {"max_epochs": options.get("max_epochs"), "threads": options.get("threads"),
                     "device": options.get("device"),
                     "early_stopping": {"patience": options.get("patience")}},
        "search": {"strategy": options.get("strategy"), "pruner": options.get("pruner"),
                   "trials": options.get("trials"), "timeout": options.get("timeout"),
                   "cv": options.get("cv"), "metric": options.get("metric"),
                   "space": options.get("space"), "space_mode": options.get("space_mode")},
        "storage": options.get("storage"), "study": options.get("study"),
        "out": options.get("out"), "resume": options.get("resume"), "seed": options.get("seed"),
    }
    unknown = set(options) - OPTION_NAMES
    if unknown:
        name = sorted(unknown)[0]
        raise ConfigError(f"unknown option '{name}'{did_you_mean(name, OPTION_NAMES)}; "
                          f"accepted: {', '.join(sorted(OPTION_NAMES))}")
    if isinstance(config, RunConfig):
        base = config.model_dump(exclude_unset=True)
        return build_config(merge(base, overrides))
    if isinstance(config, Mapping):
        return build_config(merge(dict(config), overrides))
    return load_config(config, overrides)


def tune(
    data: str | Path | pd.DataFrame | np.ndarray | None = None,
    target: str | None = None,
    *,
    y: np.ndarray | pd.Series | None = None,
    config: str | Path | RunConfig | Mapping[str, Any] | None = None,
    build_model: BuildModel | None = None,
    callbacks: Sequence[TrialCallback] = (),
    on_start: Callable[[dict[str, Any]], None] | None = None,
    **options: Any,
) -> TuneResult:
    """Tune a network on a table and return the best trained model with its test scores.

    `data` is a CSV/Parquet path, a DataFrame holding `target`, or a feature array with
    labels `y`; or pass `dataset="breast_cancer"` (a scikit-learn built-in). Options are the
    config keys by their CLI names: trials, timeout, cv, strategy, pruner, metric, space, ...

    >>> result = nntune.tune(df, target="churned", trials=60, cv=5, strategy="tpe")
    >>> result.best_params, result.test_scores, result.model.predict(new_df)

    `callbacks` are called after every trial as `fn(study, frozen_trial)`; `on_start(plan)`
    once the input is checked and the search begins.

    `build_model(hp)` replaces the model family with your own network: ask `hp.int`,
    `hp.float`, `hp.choice` for what to tune; `hp.input_dim` and `hp.output_dim` give shapes.
    """
    if isinstance(data, str | Path):
        options["data"] = str(data)
        data = None
    cfg = make_config(config, target=target, **options)
    budget = Budget(cfg.search.timeout)
    optuna.logging.set_verbosity(logging.WARNING)
    set_threads(cfg.training.threads)
    device = pick_device(cfg.training.device)

    # Everything that can be wrong with the input is checked before anything is written.
    source = data if data is not None else cfg.data.path
    if source is None and cfg.data.dataset is None:
        raise ConfigError("no data given: pass --data FILE or --dataset NAME (data.path in the config)")
    table = load_tabular(source, cfg.data.target, y=y, dataset=cfg.data.dataset, task=cfg.data.task)
    metric = get_metric(cfg.search.metric or default_metric(table.task), table.task)
    space, fixed = _space_for(cfg, build_model)
    sampler = make_sampler(cfg.search.strategy, cfg.seed, space, fixed)
    pruner = make_pruner(cfg.search.pruner, int(fixed["max_epochs"]))
    n_trials = cfg.search.trials or (None if cfg.search.timeout else 50)
    train_rows, test_rows = split_train_test(table, cfg.data.test_size, cfg.seed)
    folds = [encode_split(table, tr, va)
             for tr, va in make_folds(table, train_rows, cfg.search.cv, cfg.data.val_size, cfg.seed)]

    name = cfg.study or _study_name(table.name)
    run_dir = Path(cfg.out or Path("runs") / name)
    url = storage_url(cfg.storage, run_dir)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    study, created = open_study(name, get_storage(url), metric.direction, sampler, pruner,
                                cfg.resume)
    if created:
        _describe_study(study, cfg, table.describe(), fixed, build_model)
        if cfg.search.strategy != "grid":
            for point in _starting_points(space):
                study.enqueue_trial(point, skip_if_exists=True)

    objective = Objective(folds, table.task, len(table.classes), metric, space, fixed,
                          build_model or cfg.model.family, device, cfg.seed,
                          trial_deadline=budget.trial_deadline)
    n_fold_rows = len(folds[0].y_train)
    if on_start is not None:
        on_start({"trials": n_trials, "timeout": cfg.search.timeout, "metric": metric.name,
                  "study": name, "run_dir": str(run_dir), "done": finished_trials(study)})

    def plan_final(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        best = best_trial(study)
        if best is not None:
            budget.expect_final(_final_seconds(best, len(train_rows), n_fold_rows))

    run_trials(study, objective, n_trials, budget.search_deadline,
               callbacks=[plan_final, *callbacks])
    best = best_trial(study)
    if best is None:
        states = count_states(study)
        raise NntuneError(f"no trial completed ({_states_text(states)}); see the trials' "
                          "fail_reason, or give a longer --timeout")

    del objective, folds  # the search's encoded folds are not needed for the final model
    params = {**fixed, **best.params}
    epochs = _final_epochs(best, len(train_rows), n_fold_rows, int(fixed["max_epochs"]))
    module, params, head, preprocessor, test_scores = _train_final(
        table, train_rows, test_rows, params, epochs, build_model or cfg.model.family, device,
        cfg.seed, budget.deadline)

    info = {"family": "custom" if build_model else cfg.model.family, "params": params,
            "input_dim": len(preprocessor.get_feature_names_out()), "task": table.task, "target": table.target,
            "classes": table.classes, "metric": metric.name, "study": name, "epochs": epochs}
    model = Predictor(module, preprocessor, head, table.schema, info)
    model_dir = model.save(run_dir / "model", scores={
        "test_scores": test_scores, "metric": metric.name, "best_value": best.value,
        "best_std": best.user_attrs.get("score_std")})
    result = TuneResult(
        study=study, best_trial=best, best_params=dict(best.params), best_value=float(best.value),
        best_std=best.user_attrs.get("score_std"), metric=metric.name,
        direction=metric.direction, test_scores=test_scores, model=model, model_dir=model_dir,
        run_dir=run_dir, n_trials=count_states(study), seconds=budget.elapsed(), storage=url,
        data=table.describe())
    write_json(run_dir / "result.json", result.to_json())
    return result


def _train_final(table: TabularData, train_rows: np.ndarray, test_rows: np.ndarray,
                 params: dict[str, Any], epochs: int, source: ModelSource, device: torch.device,
                 seed: int, deadline: float | None) -> tuple:
    """Retrain `params` on all training rows for `epochs`, then score the test rows once.

    Returns (module, params, head, fitted preprocessor, test scores). The training matrix is
    freed before the test rows are encoded, so a large table is never held twice.
    """
    final = encode_split(table, train_rows, None)
    head = make_head(table.task, final.y_train, len(table.classes), params)
    torch.manual_seed(seed)
    module, params = make_module(source, params, ModelMeta(final.n_features, head.output_dim, table.task))
    fit(module, head, final.X_train, final.y_train, params, epochs=epochs, device=device,
        seed=seed, deadline=deadline)
    final.X_train = None
    X_test = torch.from_numpy(transform(final.preprocessor, table.features, test_rows)).to(device)
    test_scores = score_all(table.task, table.y[test_rows], head.scores(predict_outputs(module, X_test)))
    return module, params, head, final.preprocessor, test_scores


def _space_for(cfg: RunConfig, build_model: BuildModel | None) -> tuple[dict, dict]:
    """The run's search space and fixed values: family + recipe defaults, then the user's."""
    training = cfg.training
    fixed_defaults = {
        **RECIPE_DEFAULTS,
        "max_epochs": training.max_epochs, "patience": training.early_stopping.patience,
        "min_delta": training.early_stopping.min_delta,
        "restore_best": training.early_stopping.restore_best, "loss": training.loss,
        "label_smoothing": training.label_smoothing, "class_weight": training.class_weight,
        "clip_norm": training.clip_norm, "clip_value": training.clip_value,
    }
    default_space = dict(RECIPE_SPACE)
    if build_model is None:
        family = get_family(cfg.model.family)
        fixed_defaults = {**family.defaults, **fixed_defaults}
        default_space = {**family.space, **default_space}
    space, fixed = resolve_space(default_space, cfg.search.space, cfg.search.space_mode)
    fixed = {**{k: v for k, v in fixed_defaults.items() if k not in space}, **fixed}
    for name, accepted in KNOWN_CHOICES.items():
        if name in space and space[name].choices is not None:
            for choice in space[name].choices:
                check_choice(f"search.space.{name} choice", choice, accepted)
        if name in fixed:
            check_choice(name, fixed[name], accepted)
    return space, fixed


def _starting_points(space: dict) -> list[dict[str, Any]]:
    """The starting recipes, restricted to parameters searched and values inside the space."""
    points = []
    for recipe in STARTING_POINTS:
        point = {}
        for name, value in recipe.items():
            spec = space.get(name)
            if spec is None or not spec.matches({**recipe}):
                continue
            if spec.type == "categorical":
                if value in spec.choices:
                    point[name] = value
            elif spec.low <= value <= spec.high:
                point[name] = value
        if point:
            points.append(point)
    return points


def _final_epochs(best: optuna.trial.FrozenTrial, n_train: int, n_fold_train: int,
                  max_epochs: int) -> int:
    """Epochs for the final retrain: the best trial's early-stopped epoch count, scaled up a
    little for the larger training set, as the number of updates grows with it."""
    epochs = float(best.user_attrs.get("epochs", max_epochs))
    return max(1, min(max_epochs, round(epochs * n_train / max(1, n_fold_train))))


def _final_seconds(best: optuna.trial.FrozenTrial, n_train: int, n_fold_train: int) -> float:
    runs = best.user_attrs.get("epochs_run") or [1]
    per_epoch = best.user_attrs.get("train_seconds", 1.0) / max(1, sum(runs))
    epochs = float(best.user_attrs.get("epochs", 1))
    # More rows per epoch and proportionally more epochs: the cost grows with the square of
    # the ratio. per_epoch includes validation, which the final fit skips: that is the margin.
    return per_epoch * epochs * (n_train / max(1, n_fold_train)) ** 2 + 0.5


def _describe_study(study: optuna.Study, cfg: RunConfig, data: dict, fixed: dict,
                    build_model: BuildModel | None) -> None:
    """Store what is needed to understand (and later rerun) the study with the study itself."""
    study.set_user_attr("nntune_version", __version__)
    study.set_user_attr("config", cfg.model_dump(mode="json"))
    study.set_user_attr("data", data)
    study.set_user_attr("fixed_params", fixed)
    study.set_user_attr("family", "custom" if build_model else cfg.model.family)
    study.set_user_attr("created", time.strftime("%Y-%m-%dT%H:%M:%S"))


def _study_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "study"


def _states_text(states: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in states.items()) or "no trials ran"


def show(run_dir: str | Path) -> dict[str, Any]:
    """A finished run: its result.json plus every trial of its study as plain dicts."""
    result = read_run(run_dir)
    return {"result": result, "trials": trial_records(result["storage"], result["study"])}


def predict(model_dir: str | Path, data: str | Path | pd.DataFrame, out: str | Path | None = None,
            proba: bool = False) -> pd.DataFrame:
    """Predictions of a saved model for a table: a `prediction` column, or one probability
    column per class with `proba`. Written atomically to `out` (CSV or Parquet) when given."""
    model = load(model_dir)
    frame = read_table(data) if isinstance(data, str | Path) else data
    if proba:
        table = pd.DataFrame(model.predict_proba(frame),
                             columns=[f"proba_{c}" for c in model.classes_], index=frame.index)
    else:
        table = pd.DataFrame({"prediction": model.predict(frame)}, index=frame.index)
    if out is not None:
        write_table(Path(out), table)
    return table


def write_table(path: Path, table: pd.DataFrame) -> None:
    if path.suffix.lower() in (".parquet", ".pq"):
        import io
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        write_bytes(path, buffer.getvalue())
    else:
        write_text(path, table.to_csv(index=False))
