"""A run's plan: the data, split and space a search needs, built the same way by the driver
and by every worker that joins its study, so that all of them score trials on the same folds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from torch import nn

from ..config import RunConfig, build_config
from ..data import (
    DataOptions,
    EncodedSplit,
    TabularData,
    attach_unlabeled,
    check_same_data,
    data_reference,
    encode_folds,
    encode_split,
    fetch,
    is_url,
    load_data,
    load_tabular,
    make_folds,
    read_table,
    row_positions,
    shares_encoding,
    split_train_test,
)
from ..errors import ConfigError, check_choice
from ..models import family_names, get_family
from ..models import mlp as mlp_family
from ..search import (
    CrossValidationPruner,
    HyperParameters,
    KeptTrials,
    ModelSource,
    Objective,
    Objectives,
    Space,
    TrialCallback,
    best_trial,
    make_module,
    make_objectives,
    make_pruner,
    make_sampler,
    resolve_space,
    run_trials,
    split_meta,
)
from ..search._strategies import planned_trials
from ..training import (
    AUGMENT_DEFAULTS,
    CURRICULA,
    LOSSES,
    OPTIMIZERS,
    PACINGS,
    PRETRAIN_LOSSES,
    SCHEDULES,
    Metric,
    apply_pretrained,
    augment_space,
    cocktail_space,
    default_metric,
    get_metric,
    load_synonyms,
    make_head,
)
from ..training import DEFAULTS as RECIPE_DEFAULTS
from ..training import SPACE as RECIPE_SPACE
from ._budget import Budget

BuildModel = Callable[[HyperParameters], nn.Module]
GRAPH_BATCH = 1_000_000  # clipped to the training nodes by the trainer: full-batch training
# The family a kind of data gets when none is named (`--family auto` searches all that fit).
DEFAULT_FAMILY = {"table": "mlp", "image": "cnn", "signal": "cnn", "timeseries": "cnn", "text": "bag",
                  "graph": "gnn"}

# Names whose values must come from a known list, checked before any trial runs.
KNOWN_CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "loss": LOSSES,
                 "curriculum": CURRICULA, "pacing": PACINGS, "pretrain_loss": PRETRAIN_LOSSES}
# The mlp's own names (other families check theirs when they build).
MLP_CHOICES = {"activation": tuple(mlp_family.ACTIVATIONS), "init": mlp_family.INITS,
               "norm": mlp_family.NORMS, "shape": mlp_family.SHAPES, "embedding": mlp_family.EMBEDDINGS,
               "ensemble": mlp_family.ENSEMBLES}


@dataclass
class Plan:
    cfg: RunConfig
    table: TabularData
    metric: Metric
    space: Space
    fixed: dict[str, Any]
    model: ModelSource
    n_trials: int | None
    train_rows: np.ndarray
    test_rows: np.ndarray
    data_ref: dict[str, Any] = field(default_factory=dict)
    objectives: Objectives | None = None
    pretrained: dict[str, torch.Tensor] | None = None  # transfer learning: the weights to start from
    kept: KeptTrials | None = None  # the best trials' fold models, from this process's search

    def fold_rows(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The search's (train, validation) rows: k folds with cv, else one validation split."""
        cfg = self.cfg
        return make_folds(self.table, self.train_rows, cfg.search.cv, cfg.data.val_size, cfg.seed)

    def folds(self) -> list[EncodedSplit]:
        return self.encode_folds()[1]

    def encode_folds(self, rows: list[tuple[np.ndarray, np.ndarray]] | None = None) -> tuple[Any, list[EncodedSplit]]:
        """The search's folds encoded, and the preprocessor they share: one fitted on all
        training rows where the data allows (data.shares_encoding), else None (each fold fits
        its own on its training rows)."""
        rows = self.fold_rows() if rows is None else rows
        if shares_encoding(self.table):
            return encode_folds(self.table, self.train_rows, rows)
        return None, [encode_split(self.table, tr, va) for tr, va in rows]

    def synonym_words(self) -> dict[str, list[str]] | None:
        """Text augmentation's synonym table (data.synonyms), word -> synonyms."""
        return load_synonyms(self.cfg.data.synonyms) if self.cfg.data.synonyms else None

    def sampler(self, worker: int = 0) -> optuna.samplers.BaseSampler:
        objectives = self.objectives
        return make_sampler(self.cfg.search.strategy, self.cfg.seed, self.space, self.fixed, worker=worker,
                            multi=bool(objectives and objectives.multi), n_trials=self.n_trials)

    def pruner(self) -> optuna.pruners.BasePruner:
        if self.objectives is not None and self.objectives.multi:
            return optuna.pruners.NopPruner()  # Optuna keeps no per-epoch values for several objectives
        pruner = make_pruner(self.cfg.search.pruner, int(self.fixed["max_epochs"]),
                             strategy=self.cfg.search.strategy, n_trials=self.n_trials)
        # With k folds the chosen pruner keeps the first fold; later folds need rules that
        # compare like with like (see CrossValidationPruner). No pruning stays no pruning.
        if self.cfg.search.cv and not isinstance(pruner, optuna.pruners.NopPruner) and getattr(pruner, "active", True):
            return CrossValidationPruner(pruner)
        return pruner


def prepare(cfg: RunConfig, data: Any = None, y: Any = None, build_model: BuildModel | None = None) -> Plan:
    """Check and load everything a search needs; raises nntune's errors on bad input."""
    source = data if data is not None else cfg.data.path
    if source is None and cfg.data.dataset is None:
        raise ConfigError("no data given: pass --data FILE or --dataset NAME (data.path in the config)")
    content = fetch(str(source)) if isinstance(source, str) and is_url(source) else None
    curriculum = cfg.training.curriculum
    if curriculum.scoring == "column" and not curriculum.column:
        raise ConfigError("curriculum scoring 'column' needs training.curriculum.column (or --curriculum-column NAME)")
    column = curriculum.column if curriculum.scoring == "column" else None
    if content is not None:
        table = load_tabular(read_table(str(source), content), cfg.data.target, task=cfg.data.task,
                             difficulty_column=column)
        table.name = Path(str(source).split("?", 1)[0]).stem
    else:
        d = cfg.data
        table = load_data(source, y=y, dataset=d.dataset, options=DataOptions(
            kind=d.kind, target=d.target, task=d.task, labels=d.labels, text_column=d.text_column,
            tokenizer=d.tokenizer, vocab_size=d.vocab_size, seq_len=d.seq_len, time_column=d.time_column,
            lookback=d.lookback, horizon=d.horizon, graph=d.graph, difficulty_column=column))
        if data_kind(table) != "table" and (column or cfg.data.unlabeled or curriculum.order != "none"):
            raise ConfigError(f"curricula and unlabeled rows work with tables; this data is {data_kind(table)} data")
        if "family" not in cfg.model.model_fields_set:
            cfg.model.family = DEFAULT_FAMILY[data_kind(table)]  # stored with the study as chosen here
        _check_family_fits(cfg.model.family, data_kind(table), build_model)
    pretrain = cfg.training.pretrain
    if pretrain.epochs and (data_kind(table) != "table" or build_model is not None or cfg.model.family != "mlp"):
        raise ConfigError("autoencoder pretraining (training.pretrain.epochs) works with the mlp family on tables")
    if pretrain.epochs and pretrain.loss == "bce" and data_kind(table) == "table" and any(
            c.kind == "numeric" for c in table.schema.columns):
        raise ConfigError("pretrain loss 'bce' needs inputs in [0, 1], and nntune standardizes numeric columns; "
                          "use training.pretrain.loss: mse for tables with numeric columns")
    if cfg.data.unlabeled:
        if cfg.training.pretrain.epochs == 0:
            raise ConfigError("unlabeled rows are used for autoencoder pretraining: give training.pretrain.epochs "
                              "(--pretrain-epochs N) too")
        attach_unlabeled(table, read_table(cfg.data.unlabeled), f"unlabeled data '{cfg.data.unlabeled}'")
    ref = data_reference(source, cfg.data.dataset, y=y, content=content)
    metric = get_metric(cfg.search.metric or default_metric(table.task), table.task)
    space, fixed = space_for(cfg, build_model, data_kind(table), table.task)
    objectives = make_objectives(metric.name, metric.direction, cfg.search.objectives, cfg.search.constraints,
                                 cfg.search.pick)
    if objectives.multi and cfg.search.pruner not in ("none", "auto"):
        raise ConfigError(f"pruner '{cfg.search.pruner}' needs one objective (Optuna keeps no per-epoch values "
                          "for several); use --pruner none with --objectives")
    # A bad strategy (or one that cannot handle several objectives) fails here, early.
    make_sampler(cfg.search.strategy, cfg.seed, space, fixed, multi=objectives.multi)
    make_pruner(cfg.search.pruner, int(fixed["max_epochs"]))
    n_trials = cfg.search.trials or (None if cfg.search.timeout else 50)
    n_trials = planned_trials(cfg.search.strategy, space, fixed, n_trials)  # a grid: its distinct points at most
    train_rows, test_rows = split_train_test(table, cfg.data.test_size, cfg.seed)
    if cfg.search.cv == "auto":
        cfg.search.cv = auto_folds(table, train_rows)  # stored with the study as chosen here
    make_folds(table, train_rows, cfg.search.cv, cfg.data.val_size, cfg.seed)  # a cv the data cannot take fails now
    pretrained = None
    if cfg.training.pretrained:
        from ..predictor import load_pretrained  # skops comes with it: a second workers need not pay

        pretrained = load_pretrained(cfg.training.pretrained)
        if build_model is None:
            _check_pretrained_fits(pretrained, table, train_rows, space, fixed, cfg.model.family)
    return Plan(cfg, table, metric, space, fixed, build_model or cfg.model.family, n_trials,
                train_rows, test_rows, ref, objectives, pretrained)


# Up to this many training rows, one validation split (20%: 400 rows at most) decides among
# trials by noise, and a k-fold trial costs little; above it, folds cost more than they save.
CV_AUTO_ROWS = 2000
CV_AUTO_FOLDS = 5


def auto_folds(table: TabularData, train_rows: np.ndarray) -> int | None:
    """cv 'auto': k-fold CV for small tables, one validation split otherwise (and for data with
    its own split or a time order); fewer folds when a class has fewer training rows than 5."""
    if data_kind(table) != "table" or len(train_rows) > CV_AUTO_ROWS or getattr(table, "fixed_split", None) is not None:
        return None
    if table.is_classification:
        smallest = int(np.bincount(table.y[train_rows], minlength=len(table.classes)).min())
        folds = min(CV_AUTO_FOLDS, smallest)
        return folds if folds >= 2 else None
    return CV_AUTO_FOLDS


def plan_of_study(attrs: dict[str, Any], data: Any = None, y: Any = None,
                  build_model: BuildModel | None = None, in_memory_hint: str = "",
                  cv: int | None = None) -> Plan:
    """The plan of an existing study, from the config and data reference stored with it (the
    data checked by its checksum); for workers, reports and ablations. `data` stands in for
    in-memory data, which a study cannot reference; `in_memory_hint` says how to pass it."""
    ref = attrs.get("data_ref") or {}
    if data is None:
        if ref.get("kind") not in ("file", "url", "dataset"):
            raise ConfigError(in_memory_hint or "the study was started on in-memory data: pass it as data=...")
        data = ref.get("path") or ref.get("url")
    cfg = build_config(attrs["config"])
    if cv is not None:
        cfg.search.cv = cv
    plan = prepare(cfg, data, y, build_model)
    check_same_data(ref, plan.data_ref)
    return plan


def space_for(cfg: RunConfig, build_model: BuildModel | None, kind: str = "table",
              task: str | None = None) -> tuple[Space, dict[str, Any]]:
    """The run's search space and fixed values: family + recipe defaults, then the user's.
    Family `auto` searches every family that fits the data's kind, each family's parameters
    conditional on it being chosen. `task` (None: not known yet) decides the label smoothing."""
    training = cfg.training
    fixed_defaults = {
        **RECIPE_DEFAULTS,
        "max_epochs": training.max_epochs, "patience": training.early_stopping.patience,
        "min_delta": training.early_stopping.min_delta,
        "restore_best": training.early_stopping.restore_best, "loss": training.loss,
        "label_smoothing": label_smoothing_for(cfg, build_model, kind, task), "class_weight": training.class_weight,
        "clip_norm": training.clip_norm, "clip_value": training.clip_value,
        "curriculum": training.curriculum.order, "pacing": training.curriculum.pacing,
        "pacing_start": training.curriculum.start, "pacing_full": training.curriculum.full,
        "freeze_layers": training.freeze_layers, "pretrained_lr_scale": training.pretrained_lr_scale,
        "pretrain_epochs": training.pretrain.epochs, "pretrain_loss": training.pretrain.loss,
        "pretrain_noise": training.pretrain.noise,
    }
    default_space = dict(RECIPE_SPACE)
    if build_model is None and cfg.model.family == "auto":
        family_space, family_defaults = _families_space(kind)
        fixed_defaults = {**family_defaults, **fixed_defaults}
        default_space = {**family_space, **default_space}
    elif build_model is None:
        family = get_family(cfg.model.family)
        fixed_defaults = {**family.defaults, **fixed_defaults}
        default_space = {**family.space, **default_space}
    kind_space, kind_fixed = _kind_space(cfg, kind)
    default_space = {**default_space, **kind_space}
    fixed_defaults = {**fixed_defaults, **kind_fixed}
    # A value the kind fixes leaves the default space (the user may still search it).
    default_space = {k: v for k, v in default_space.items() if k not in kind_fixed or k in kind_space}
    user_space = dict(cfg.search.space)
    if training.pretrained and build_model is None:
        # The weights fix the network's shape: its width and depth are not searched.
        user_space = {**pretrained_architecture(training.pretrained, cfg.model.family), **user_space}
    if training.pretrain.epochs and build_model is None:  # the autoencoder mirrors a plain MLP's blocks
        user_space = {**mlp_family.PLAIN, **user_space}
    if cfg.search.cocktail:
        # Asked for explicitly, so kept with space_mode replace too; the user's entries still win.
        user_space = {**cocktail_space(fixed_defaults, user_space), **user_space}
    space, fixed = resolve_space(default_space, user_space, cfg.search.space_mode)
    fixed = {**{k: v for k, v in fixed_defaults.items() if k not in space}, **fixed}
    known = {**KNOWN_CHOICES, **(MLP_CHOICES if cfg.model.family == "mlp" and build_model is None else {})}
    for name, accepted in known.items():
        if name in space and space[name].choices is not None:
            for choice in space[name].choices:
                check_choice(f"search.space.{name} choice", choice, accepted)
        if name in fixed:
            check_choice(name, fixed[name], accepted)
    return space, fixed


def _check_pretrained_fits(state: dict[str, torch.Tensor], table: TabularData, train_rows: np.ndarray,
                           space: Space, fixed: dict[str, Any], family: str) -> None:
    """Weights that fit no network of the run fail here, before a study is written, with the
    error naming the mismatched layers; checked when the network's shape is fixed (a model
    directory fixes it; with a bare file the user fixes it or trials that do not fit fail)."""
    if any(_is_shape_key(k, family) for k in space):
        return
    split = encode_split(table, train_rows, None)
    head = make_head(table.task, split.y_train, len(table.classes), fixed)
    module, _ = make_module(family, fixed, split_meta(split, head.output_dim, table.task, data_kind(table)))
    apply_pretrained(module, state)


def _kind_space(cfg: RunConfig, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Entries and fixed values that only one kind of data has: the vocabulary and text length
    (up to what the encoder keeps), a time series' lookback, full-batch training on a graph,
    and with `search.augment` the kind's augmentations."""
    data = cfg.data
    space: dict[str, Any] = {}
    fixed: dict[str, Any] = dict(AUGMENT_DEFAULTS)
    if kind == "text":
        vocabularies = {v for v in (2000, 5000, 10000) if v < data.vocab_size} | {data.vocab_size}
        space["vocab_size"] = {"type": "categorical", "choices": sorted(vocabularies)}
        space["seq_len"] = {"type": "categorical",
                            "choices": sorted({n for n in (32, 64) if n < data.seq_len} | {data.seq_len})}
    elif kind == "timeseries" and data.lookback > 4:
        space["lookback"] = {"type": "int", "low": 4, "high": data.lookback}
    elif kind == "graph":
        # One batch of every training node, as GCN-style training does: the message passing
        # runs over the whole graph whatever the batch, so smaller batches only cost more passes.
        fixed["batch_size"] = GRAPH_BATCH
    if cfg.search.augment:
        space.update(augment_space(kind, synonyms=bool(data.synonyms)))
    return space, fixed


def label_smoothing_for(cfg: RunConfig, build_model: BuildModel | None, kind: str, task: str | None) -> float:
    """The config's label smoothing, else the family's own for classification: with family
    auto the kind's default family's (mlp for tables), with a network of the user's none."""
    if cfg.training.label_smoothing is not None:
        return cfg.training.label_smoothing
    if task == "regression" or build_model is not None:
        return 0.0
    family = cfg.model.family if cfg.model.family != "auto" else DEFAULT_FAMILY.get(kind)
    return get_family(family).label_smoothing if family else 0.0


def _families_space(kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """`family` as a choice among those for `kind`, and each family's entries applying only
    when it is chosen (an entry that several families share applies to all of them, with the
    first family's range)."""
    names = family_names(kind)
    if not names:
        raise ConfigError(f"no model family takes {kind} data")
    space: dict[str, Any] = {"family": {"type": "categorical", "choices": names}}
    users: dict[str, list[str]] = {}
    defaults: dict[str, Any] = {}
    for name in names:
        family = get_family(name)
        for key, spec in family.space.items():
            users.setdefault(key, []).append(name)
            space.setdefault(key, dict(spec))
        defaults = {**family.defaults, **defaults}
    for key, families in users.items():
        own = space[key].get("when") or {}
        space[key] = {**space[key], "when": {**own, "family": families}}
    return space, defaults


def _check_family_fits(family: str, kind: str, build_model: BuildModel | None) -> None:
    if build_model is not None or family == "auto":
        return
    fits = get_family(family).data_kinds
    if kind not in fits:
        raise ConfigError(f"family '{family}' does not take {kind} data (it takes {', '.join(fits)}); "
                          f"families for {kind} data: {', '.join(family_names(kind)) or 'none'}, or --family auto")


def data_kind(table: Any) -> str:
    """table, image, signal, timeseries, text or graph."""
    return getattr(table, "kind", "table")


def pretrained_architecture(source: str, family: str) -> dict[str, Any]:
    """The shape parameters of a pretrained network: from an nntune model directory's config,
    or as the family reads them off a bare .safetensors file's tensor names and shapes."""
    from ..predictor import FILES as MODEL_FILES
    from ..predictor import load_pretrained

    config = Path(source) / MODEL_FILES["config"]
    if not config.is_file():
        infer = get_family(family).shape_of_weights
        return infer(load_pretrained(source)) if infer is not None else {}
    info = json.loads(config.read_text())
    if info.get("family") != family:
        raise ConfigError(f"pretrained model '{source}' is of family '{info.get('family')}'; this run tunes "
                          f"'{family}': use the same family (--family {info.get('family')})")
    return {k: v for k, v in info.get("params", {}).items() if _is_shape_key(k, family)}


def _is_shape_key(key: str, family: str) -> bool:
    """Whether `key` decides weight shapes in `family` ('units_*' covers units_0, units_1, ...)."""
    keys = get_family(family).shape_keys
    return key in keys or any(k.endswith("_*") and key.startswith(k[:-1]) for k in keys)


# Trials per population under `population: auto`. benchmarks/population.py, 2 x 64 MLP at batch
# 32, one thread: 11x the sequential trainer's samples/s at 16 members, 13.5x at 32, no more at
# 64; 16, because a batch is a step the sampler takes without seeing any of its results.
POPULATION_AUTO = 16
# ... and only where a training fold has this many rows. Measured at 60 s on the 19 development
# tables (docs/population.md): populations ran 1.4-6x the trials on every table whose folds have
# 360 rows or more (one with a single-trial budget aside), and no more on the twelve below 300
# (0.6-0.9x on six, 1.1-1.6x on four): there an epoch is a few steps, and each member's
# evaluation and bookkeeping, which a population does not share, outweigh the shared steps; a
# trial pruned alone frees its time, one pruned in a population does not.
POPULATION_MIN_ROWS = 320


def search(plan: Plan, study: optuna.Study, budget: Budget, device: torch.device,
           callbacks: Sequence[TrialCallback] = ()) -> None:
    """Run this process's share of the study's trials, within the budget."""
    rows = plan.fold_rows()
    shared, folds = plan.encode_folds(rows)
    several = plan.objectives is not None and (plan.objectives.multi or plan.objectives.constraints)
    if shared is not None and not several:
        # The best trials' fold models are the delivered model's members (execution/_final.py);
        # a few more than the ensemble's candidates, as trials of equal configurations share a place.
        position = row_positions(plan.train_rows)
        plan.kept = KeptTrials(plan.cfg.training.ensemble + 2, plan.metric.direction,
                               [position(va) for _, va in rows], len(plan.train_rows), shared)
    objective = Objective(folds, plan.table.task, len(plan.table.classes), plan.metric, plan.space,
                          plan.fixed, plan.model, device, plan.cfg.seed,
                          trial_deadline=budget.trial_deadline, objectives=plan.objectives,
                          pretrained=plan.pretrained, kind=data_kind(plan.table),
                          synonym_words=plan.synonym_words(), keep=plan.kept)
    from ._final import final_mode, final_seconds, refit_seeds, runners_up  # (it builds on this module's Plan)

    n_fold_rows, seeds = len(folds[0].y_train), refit_seeds(plan)

    def plan_final(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        budget.count_trial()
        best = best_trial(study, plan.objectives)
        if best is not None:
            mode = final_mode(plan, best, n_fold_rows)
            others = runners_up(plan, study, best) if mode == "folds" else []
            budget.expect_final(final_seconds(best, len(plan.train_rows), n_fold_rows, mode, others,
                                              budget.timeout, plan.kept, seeds if mode == "refit" else 1))

    size, auto = population_size(plan, device, n_fold_rows)
    run_trials(study, objective, plan.n_trials, budget.search_deadline,
               callbacks=[plan_final, *callbacks], retries=plan.cfg.execution.retries,
               population=size, population_auto=auto)


def population_size(plan: Plan, device: torch.device, fold_rows: int | None = None) -> tuple[int, bool]:
    """How many trials train at once (1: each alone), and whether only small networks do.
    `auto`: POPULATION_AUTO on CPU, with a sampler that proposes each trial (not a grid), where
    the study is this process's alone (one worker, storage that is not a database server):
    a population takes its members' share of the budget at once, which workers joining the
    study would otherwise share."""
    cfg = plan.cfg
    if cfg.search.population == "off" or cfg.search.strategy == "grid":
        return 1, False
    if cfg.search.population == "auto":
        shared = (cfg.execution.workers > 1 or cfg.execution.backend != "local"
                  or (cfg.storage is not None and "://" in cfg.storage and not cfg.storage.startswith("sqlite")))
        small = fold_rows is not None and fold_rows < POPULATION_MIN_ROWS
        return (POPULATION_AUTO, True) if device.type == "cpu" and not shared and not small else (1, False)
    return int(cfg.search.population), False

