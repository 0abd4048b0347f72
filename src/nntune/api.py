"""One function per user action. The CLI calls these and nothing else.

`tune` wires the pieces in the one direction data flows: config -> data -> space -> trials
(study) -> final model -> files.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from . import __version__
from ._atomic import write_bytes, write_json, write_text
from ._places import (
    claim,
    claim_figures,
    claim_page,
    claim_run_dir,
    is_compare_dir,
    is_json_with,
    is_model_dir,
    is_predictions,
)
from ._secrets import mask_url
from .config import RunConfig, build_config, config_differences, defining_config, load_config, merge, public_config
from .data import check_same_data, read_table
from .errors import ConfigError, DataError, NntuneError, check_choice, did_you_mean
from .execution import (
    Budget,
    BuildModel,
    DepthSearch,
    WorkerJob,
    check_picklable,
    deliver,
    pick_device,
    plan_of_study,
    prepare,
    publish_run,
    require_ray,
    run_local,
    run_ray,
    run_worker,
    search,
    set_threads,
)
from .models import Ensemble
from .predictor import Predictor, load
from .reports import read_run, render_ablation, render_comparison, render_report
from .search import (
    TrialCallback,
    absolute_storage,
    best_trial,
    count_states,
    fail_dead_trials,
    finished_trials,
    get_storage,
    is_journal,
    load_source,
    open_study,
    pareto_front,
    starting_points,
    storage_url,
    study_exists,
    trial_records,
    warm_start_points,
)

# What writing the report takes on a small table (figures, importances, reading the data again,
# the baselines), and what each trial adds (the figures read and copy every trial): kept free
# at the end of a run with a timeout, at most a tenth of it. Measured on one thread: 0.9 s after
# 10 trials, 4.3 s after 105 (ecoli at 60 s, where a fixed 3 s overran the timeout by 2 s).
REPORT_SECONDS = 3.0
REPORT_SECONDS_PER_TRIAL = 0.02

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
    objectives: list[str] = field(default_factory=list)  # several: the metric first
    pareto_front: list[dict[str, Any]] = field(default_factory=list)  # with several objectives
    compression: list[dict[str, Any]] = field(default_factory=list)  # the config's compress steps
    failed: dict[str, Any] = field(default_factory=dict)  # failed trials and workers: counts and reasons
    ensemble: dict[str, Any] = field(default_factory=dict)  # final folds: the trials averaged, scores beside
    warnings: list[str] = field(default_factory=list)  # what the run did other than asked

    def to_json(self) -> dict[str, Any]:
        return {
            "study": self.study.study_name, "best_trial": self.best_trial.number, "best_params": self.best_params,
            "best_value": self.best_value, "best_std": self.best_std, "metric": self.metric,
            "direction": self.direction, "test_scores": self.test_scores,
            "model_dir": str(self.model_dir), "run_dir": str(self.run_dir),
            "storage": self.storage,
            "n_trials": self.n_trials, "seconds": round(self.seconds, 2), "data": self.data,
            "objectives": self.objectives, "pareto_front": self.pareto_front,
            "depth_curve": self.study.user_attrs.get("depth_curve"),  # strategy "depth" only
            "compression": self.compression, "failed": self.failed, "warnings": self.warnings,
            "ensemble": self.ensemble,
            "nntune_version": __version__,
        }


OPTION_NAMES = frozenset({
    "data", "dataset", "target", "task", "test_size", "val_size", "family", "max_epochs",
    "threads", "device", "patience", "final", "strategy", "pruner", "trials", "timeout", "cv", "metric",
    "space", "space_mode", "storage", "study", "out", "resume", "seed", "workers", "backend",
    "address", "cpus_per_trial", "gpus_per_trial", "heartbeat", "retries", "objectives", "constraints",
    "pick", "warm_start", "cocktail", "depth_trials", "depth_max", "unlabeled", "pretrained",
    "freeze_layers", "pretrained_lr_scale", "pretrain_epochs", "pretrain_loss", "pretrain_noise",
    "curriculum", "curriculum_column", "pacing", "pacing_start", "pacing_full", "compress", "kind", "labels",
    "text_column", "tokenizer", "vocab_size", "seq_len", "synonyms", "time_column", "lookback", "horizon", "graph",
    "augment", "population"})


def make_config(config: str | Path | RunConfig | Mapping[str, Any] | None = None,
                **options: Any) -> RunConfig:
    """Build a RunConfig from a YAML path, dict or RunConfig plus option overrides
    (flat names as on the CLI: target, trials, strategy, ...). None means 'not given'."""
    options = {k: str(v) if isinstance(v, Path) else v for k, v in options.items()}
    overrides = {
        "data": {"path": options.get("data"), "dataset": options.get("dataset"),
                 "target": options.get("target"), "task": options.get("task"),
                 "test_size": options.get("test_size"), "val_size": options.get("val_size"),
                 "unlabeled": options.get("unlabeled"),
                 **{k: options.get(k) for k in ("kind", "labels", "text_column", "tokenizer", "vocab_size", "seq_len",
                                                "synonyms", "time_column", "lookback", "horizon", "graph")}},
        "model": {"family": options.get("family")},
        "training": {"max_epochs": options.get("max_epochs"), "threads": options.get("threads"),
                     "final": options.get("final"),
                     "device": options.get("device"),
                     "early_stopping": {"patience": options.get("patience")},
                     "pretrained": options.get("pretrained"), "freeze_layers": options.get("freeze_layers"),
                     "pretrained_lr_scale": options.get("pretrained_lr_scale"),
                     "pretrain": {"epochs": options.get("pretrain_epochs"), "loss": options.get("pretrain_loss"),
                                  "noise": options.get("pretrain_noise")},
                     "curriculum": {"order": options.get("curriculum"), "pacing": options.get("pacing"),
                                    "start": options.get("pacing_start"), "full": options.get("pacing_full"),
                                    **_curriculum_column(options.get("curriculum_column"), options.get("curriculum"))}},
        "search": {"strategy": options.get("strategy"), "pruner": options.get("pruner"),
                   "trials": options.get("trials"), "timeout": options.get("timeout"),
                   "cv": options.get("cv"), "metric": options.get("metric"),
                   "space": options.get("space"), "space_mode": options.get("space_mode"),
                   "objectives": _listed(options.get("objectives")),
                   "constraints": _listed(options.get("constraints")), "pick": options.get("pick"),
                   "warm_start": options.get("warm_start"), "cocktail": options.get("cocktail"),
                   "depth_trials": options.get("depth_trials"), "depth_max": options.get("depth_max"),
                   "augment": options.get("augment"), "population": options.get("population")},
        "execution": {"workers": options.get("workers"), "backend": options.get("backend"),
                      "address": options.get("address"), "cpus_per_trial": options.get("cpus_per_trial"),
                      "gpus_per_trial": options.get("gpus_per_trial"), "heartbeat": options.get("heartbeat"),
                      "retries": options.get("retries")},
        "storage": options.get("storage"), "study": options.get("study"),
        "out": options.get("out"), "resume": options.get("resume"), "seed": options.get("seed"),
        "compress": _listed(options.get("compress")),
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


def _claim_run_places(run_dir: Path, cfg: RunConfig, report: bool, study: str | None = None) -> None:
    """Everything a run writes, refused up front where it is not nntune's to replace; and the
    model and result of another study's run are not replaced either."""
    claim_run_dir(run_dir)
    result = run_dir / "result.json"
    if study is not None and result.is_file():
        other = (read_run(run_dir).get("study") if is_json_with("study")(result) else None)
        if other not in (None, study):
            raise ConfigError(f"'{run_dir}' holds the run of study '{other}'; choose another --out, "
                              f"or continue that run with --study {other} --resume")
    if report:
        claim_page(run_dir / "report.html")
    for step in cfg.compress:
        _claim_compressed(run_dir, run_dir / "model",
                          Path(step.out) if step.out else run_dir / COMPRESSED_DIRS[step.method])


def _claim_compressed(run_dir: Path, source: Path, target: Path) -> None:
    """A compressed model gets a model directory of its own: never the run, nor the model it
    was made from."""
    for own, what in ((run_dir, "the run directory"), (source, "the model it is compressed from")):
        if target.resolve() == own.resolve():
            raise ConfigError(f"--out '{target}' is {what}; a compressed model needs a directory of its own "
                              f"(default: {run_dir / 'model-<method>'})")
    claim(target, is_model_dir, "an nntune model directory")


def _check_compress_steps(cfg: RunConfig, build_model: BuildModel | None) -> None:
    """The config's compress steps, checked before the search rather than after it."""
    from .compression import check_options

    for step in cfg.compress:
        check_options(step.method, step.options())
    if cfg.compress and (build_model is not None or cfg.model.family != "mlp"):
        family = "a build_model function" if build_model is not None else f"family '{cfg.model.family}'"
        raise ConfigError(f"compress steps work on the mlp family; this run's network comes from {family}")


def _curriculum_column(column: str | None, order: str | None) -> dict[str, str]:
    """A curriculum column implies scoring by that column, and easy-first order unless another
    order is given."""
    if column is None:
        return {}
    return {"scoring": "column", "column": column, **({} if order else {"order": "easy_first"})}


def _listed(value: Any) -> list[str] | None:
    """'accuracy,params' or ['accuracy', 'params'] as a list; None stays None (not given)."""
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)


def tune(
    data: str | Path | pd.DataFrame | np.ndarray | None = None,
    target: str | None = None,
    *,
    y: np.ndarray | pd.Series | None = None,
    config: str | Path | RunConfig | Mapping[str, Any] | None = None,
    build_model: BuildModel | None = None,
    callbacks: Sequence[TrialCallback] = (),
    on_start: Callable[[dict[str, Any]], None] | None = None,
    report: bool = True,
    **options: Any,
) -> TuneResult:
    """Tune a network on a table and return the best trained model with its test scores.

    `data` is a CSV/Parquet path (or http(s) URL), a DataFrame holding `target`, or a feature
    array with labels `y`; or pass `dataset="breast_cancer"` (a scikit-learn built-in). Options
    are the config keys by their CLI names: trials, timeout, cv, strategy, pruner, metric,
    space, workers, backend, ...

    >>> result = nntune.tune(df, target="churned", trials=60, cv=5, strategy="tpe")
    >>> result.best_params, result.test_scores, result.model.predict(new_df)

    `callbacks` are called after every trial as `fn(study, frozen_trial)`; `on_start(plan)`
    once the input is checked and the search begins.

    `build_model(hp)` replaces the model family with your own network: ask `hp.int`,
    `hp.float`, `hp.choice` for what to tune; `hp.input_dim` and `hp.output_dim` give shapes.

    With `workers=N` the trials run in N processes sharing the study; with `backend="ray"` as
    tasks on a Ray cluster (`address=...`, default: a local one). The final model is trained here.
    `report=False` skips writing `report.html` into the run directory.
    """
    if isinstance(data, str | Path):
        options["data"] = str(data)
        data = None
    cfg = make_config(config, target=target, **options)
    budget = Budget(cfg.search.timeout)
    if report and cfg.search.timeout is not None:
        budget.tail = min(REPORT_SECONDS, 0.1 * cfg.search.timeout)
        budget.tail_per_trial, budget.tail_cap = REPORT_SECONDS_PER_TRIAL, 0.1 * cfg.search.timeout
    optuna.logging.set_verbosity(logging.WARNING)
    execution = cfg.execution
    parallel = execution.workers > 1 or execution.backend == "ray"
    device = pick_device(cfg.training.device)

    # Everything that can be wrong with the input is checked before anything is written.
    if cfg.out:
        _claim_run_places(Path(cfg.out), cfg, report)  # before reading the data, when it can be
    depth = DepthSearch.of(cfg, build_model)  # None for other strategies; raises on bad input
    plan = prepare(depth.config if depth else cfg, data, y, build_model)
    _check_compress_steps(cfg, build_model)
    warm = _warm_points(cfg.search.warm_start, plan) if cfg.search.warm_start else []
    name = cfg.study or _study_name(plan.table.name)
    run_dir = Path(cfg.out or Path("runs") / name)
    _claim_run_places(run_dir, cfg, report, name)
    url = storage_url(cfg.storage, run_dir)
    job = WorkerJob(absolute_storage(url), name, data=data if plan.data_ref["kind"] == "memory" else None,
                    y=y, build_model=build_model, threads=cfg.training.threads)
    if parallel:
        check_picklable(job)
    if execution.backend == "ray":
        require_ray()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    storage = get_storage(url, execution.heartbeat, execution.retries)
    if cfg.resume:
        _check_resume(storage, name, cfg, plan.data_ref)
    # -- depth search (strategy "depth", execution/_depth.py): n_layers is chosen first, depth by
    # depth in studies '<name>.depth<d>'; the main study then tunes the rest at that depth.
    if depth is not None:
        plan = depth.run(plan, storage, name, budget, device, callbacks,
                         first_points=lambda space: starting_points(space, fixed=plan.fixed, family=plan.model,
                                                                       rows=len(plan.train_rows)))
        callbacks = [*callbacks, depth.record]  # stores the depth curve with the main study
    # -- end of depth search
    study, created = open_study(name, storage, list(plan.objectives.directions), plan.sampler(), plan.pruner(),
                                cfg.resume)
    if created or "config" not in study.user_attrs:  # (a run killed while creating it)
        _describe_study(study, cfg, plan.table.describe(), plan.fixed, build_model)
    if not study.get_trials(deepcopy=False):  # a new study: the first trials to try
        for point in warm:
            study.enqueue_trial(point, user_attrs={"warm_start": cfg.search.warm_start}, skip_if_exists=True)
        if cfg.search.strategy != "grid":
            for point in starting_points(plan.space, fixed=plan.fixed, family=plan.model,
                                         rows=len(plan.train_rows))[:plan.n_trials]:
                study.enqueue_trial(point, skip_if_exists=True)
    publish_run(study, plan, budget)
    fail_dead_trials(study, execution.retries)  # trials of an earlier run of this study that was killed
    if on_start is not None:
        on_start({"trials": plan.n_trials, "timeout": cfg.search.timeout, "metric": plan.metric.name,
                  "study": name, "run_dir": str(run_dir), "done": finished_trials(study),
                  "workers": execution.workers, "backend": execution.backend})

    worker_errors: list[str] = []
    if execution.backend == "ray":
        worker_errors = run_ray(job, study, execution.address, execution.cpus_per_trial, execution.gpus_per_trial,
                                callbacks)
    elif parallel:
        def search_here(threads: int, serialised: Sequence[TrialCallback]) -> None:
            set_threads(threads)
            search(plan, study, budget, device, serialised)

        worker_errors = run_local(job, execution.workers, study, callbacks, here=search_here)
    else:
        set_threads(cfg.training.threads)
        search(plan, study, budget, device, callbacks)
    best = best_trial(study, plan.objectives)
    complete = count_states(study).get("complete", 0)
    if best is None and complete and plan.objectives.constraints:
        raise NntuneError(f"none of the {complete} complete trials met the constraints "
                          f"({', '.join(cfg.search.constraints)}); loosen them or search longer")
    failed = _failures(study, worker_errors)
    if best is None:
        states = count_states(study)
        common = f"; most often: {failed['most_common']}" if failed.get("most_common") else ""
        raise NntuneError(f"no trial completed ({_states_text(states)}){common}; see the trials' "
                          "fail_reason (nntune show), or give a longer --timeout")

    if parallel:
        set_threads(cfg.training.threads)  # the final model has the machine to itself
    final = deliver(plan, study, best, device, budget.final_deadline())
    params, test_scores, meta = final.params, final.test_scores, final.meta
    run_warnings = list(final.notes)
    if final.mode == "refit" and final.epochs < final.planned_epochs:
        run_warnings.append(f"the final model trained {final.epochs} of its {final.planned_epochs} planned epochs "
                            f"before the time limit; give a longer --timeout for the full retrain")
        logging.getLogger("nntune").warning(run_warnings[-1])

    table = plan.table
    info = {"family": "custom" if build_model else params.get("family", cfg.model.family), "params": params,
            "input_dim": meta.input_dim, "meta": meta.to_json(), "task": table.task, "target": table.target,
            "classes": table.classes, "metric": plan.metric.name, "study": name, "epochs": final.epochs,
            "planned_epochs": final.planned_epochs, "final": final.mode,
            **({"ensemble": {"members": len(final.module.members), "combine": final.module.combine,
                             "weights": final.module.weights,
                             **({"scales": final.module.scales, "shifts": final.module.shifts}
                                if final.module.rescaled else {}),
                             "configs": final.selection["configs"],
                             "member_config": final.selection["member_config"], "folds": final.members}}
               if isinstance(final.module, Ensemble) else {}),
            **({"selection": {k: v for k, v in final.selection.items() if k not in ("configs", "member_config")}}
               if final.selection else {}),
            **({"input_column": table.details["input_column"]} if "input_column" in getattr(table, "details", {})
               else {})}
    model = Predictor(final.module, final.preprocessor, final.head, table.schema, info)
    model_dir = model.save(run_dir / "model", scores={
        "test_scores": test_scores, "metric": plan.metric.name, "best_value": best.values[0],
        "best_std": best.user_attrs.get("score_std")})
    result = TuneResult(
        study=study, best_trial=best, best_params=dict(best.params), best_value=float(best.values[0]),
        best_std=best.user_attrs.get("score_std"), metric=plan.metric.name,
        direction=plan.metric.direction, test_scores=test_scores, model=model, model_dir=model_dir,
        run_dir=run_dir, n_trials=count_states(study), seconds=budget.elapsed(), storage=mask_url(url),
        data=table.describe(), objectives=list(plan.objectives.names) if plan.objectives.multi else [],
        pareto_front=_front(study, plan) if plan.objectives.multi else [], failed=failed, warnings=run_warnings,
        ensemble=_ensemble_summary(final))
    write_json(run_dir / "result.json", result.to_json())
    if cfg.compress:
        # After the result is on disk: each step reads the run back as `nntune compress` does.
        result.compression = [compress(run_dir, step.method, step.out, data=data, y=y, **step.options())
                              for step in cfg.compress]
        write_json(run_dir / "result.json", result.to_json())
    if report:
        render_report(run_dir, data=data, y=y, model=model)
    return result


def report(run_dir: str | Path, out: str | Path | None = None, *, data: Any = None, y: Any = None,
           baselines: bool | None = None, png: str | Path | None = None) -> Path:
    """Write the HTML report of a finished run (default `<run_dir>/report.html`); returns its path.

    It opens offline (plotly embedded) and holds the summary, the best configuration, the top
    trials, Optuna's plots of the study, learning curves and the final model's diagnostics on
    the test rows. `baselines` (default: when they cost under a tenth of the run) adds the
    untuned starting network and gradient boosting trained on the same split. `data` is needed
    only for runs on in-memory data. `png`: a directory to write every figure to as PNG too.

    >>> nntune.report("runs/churn", png="figures/")
    """
    claim_page(Path(out) if out is not None else Path(run_dir) / "report.html")
    claim_figures(png)
    return render_report(run_dir, out, data=data, y=y, baselines=baselines, png=png)


def worker(
    storage: str,
    study: str,
    *,
    data: str | Path | pd.DataFrame | np.ndarray | None = None,
    y: np.ndarray | pd.Series | None = None,
    build_model: BuildModel | None = None,
    timeout: float | None = None,
    threads: int | None = None,
    wait: float = 0.0,
    callbacks: Sequence[TrialCallback] = (),
    on_start: Callable[[], None] | None = None,
) -> int:
    """Join a running study as one more worker; returns the number of trials it ran.

    The study holds its config, data reference (checked by checksum) and trial budget, so
    the storage URL and study name are enough; `data` only overrides where the data is read
    from (or supplies in-memory data), and `build_model` is needed for custom-model studies.
    `wait` gives a driver started at the same time that long to create the study.

    >>> nntune.worker("postgresql://db-host/nntune", "churn")
    """
    if isinstance(data, Path):
        data = str(data)
    return run_worker(WorkerJob(absolute_storage(storage), study, data=data, y=y, build_model=build_model,
                                threads=threads, timeout=timeout, wait=wait), callbacks, on_start)


def _warm_points(source: str, plan) -> list[dict[str, Any]]:
    """The best configurations of an earlier run or study (RUN_DIR, STORAGE or STORAGE#STUDY)
    that fit this run's space; they become its first trials."""
    if plan.cfg.search.strategy == "grid":
        raise ConfigError("warm_start needs a strategy other than grid (the grid fixes every trial)")
    text, _, name = str(source).partition("#")
    if not name and (Path(text) / "result.json").exists():
        name = read_run(text)["study"]
    try:
        previous = load_source(_storage_of(text), name or None)
    except ConfigError as exc:
        raise ConfigError(f"warm_start: {exc}") from None
    points = warm_start_points(previous, plan.space, plan.fixed, plan.metric.direction)
    if not points:
        raise ConfigError(f"warm start: no complete trial of study '{previous.study_name}' fits this run's "
                          "search space")
    return points


def _front(study: optuna.Study, plan) -> list[dict[str, Any]]:
    """The Pareto-optimal trials as plain dicts, best first objective first."""
    front = pareto_front(study, plan.objectives)
    sign = 1.0 if plan.objectives.directions[0] == "maximize" else -1.0
    return [{"number": t.number, "values": dict(zip(plan.objectives.names, t.values, strict=True)), "params": t.params}
            for t in sorted(front, key=lambda t: -sign * t.values[0])]


def _check_resume(storage: optuna.storages.BaseStorage, name: str, cfg: RunConfig, data_ref: dict) -> None:
    """A resumed study goes on only under the configuration and data its trials were scored
    with; checked before anything is written (and before a depth search starts)."""
    if not study_exists(storage, name):
        return
    attrs = optuna.load_study(study_name=name, storage=storage).user_attrs
    if "data_ref" in attrs:
        check_same_data(attrs["data_ref"], data_ref)
    if "run_config" in attrs:
        differences = config_differences(attrs["run_config"], defining_config(cfg))
    else:  # a study of an earlier nntune: what it stored of the search
        stored = attrs.get("config", {}).get("search", {})
        differences = [f"search.{key}: stored {stored.get(key) or []}, now {getattr(cfg.search, key) or []}"
                       for key in ("objectives", "constraints")
                       if (stored.get(key) or []) != (getattr(cfg.search, key) or [])]
    if differences:
        raise ConfigError(f"study '{name}' was tuned with another configuration ({'; '.join(differences)}); "
                          "resume it with the same options, or start another study with --study NEW")


def _describe_study(study: optuna.Study, cfg: RunConfig, data: dict, fixed: dict,
                    build_model: BuildModel | None) -> None:
    """Store what is needed to understand (and later rerun) the study with the study itself."""
    study.set_user_attr("nntune_version", __version__)
    study.set_user_attr("config", public_config(cfg))
    study.set_user_attr("run_config", defining_config(cfg))  # what a resume must repeat
    study.set_user_attr("data", data)
    study.set_user_attr("fixed_params", fixed)
    study.set_user_attr("family", "custom" if build_model else cfg.model.family)
    study.set_user_attr("objectives", cfg.search.objectives)
    study.set_user_attr("created", time.strftime("%Y-%m-%dT%H:%M:%S"))


def _ensemble_summary(final: Any) -> dict[str, Any]:
    """Which trials (or refits of one) the delivered model averages, with the best trial alone beside it."""
    selection = final.selection
    if not selection:
        return {}
    test = {"ensemble": final.test_scores, "best_trial": selection.get("test_best_trial", final.test_scores)}
    if "seeds" in selection:
        return {"seeds": selection["seeds"], "test": test}
    return {"trials": selection["trials"], "counts": selection["counts"], "validation": selection["validation"],
            "test": test}


def _failures(study: optuna.Study, worker_errors: Sequence[str] = ()) -> dict[str, Any]:
    """Failed trials (and workers that failed as a whole) with their most common reasons, so
    a run that ended with fewer trials than asked says why."""
    # (A trial failed without a reason was a dead worker's, and was queued again.)
    reasons = Counter(t.user_attrs["fail_reason"]
                      for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
                      if "fail_reason" in t.user_attrs and not t.user_attrs.get("surplus"))
    if not reasons and not worker_errors:
        return {}
    top = reasons.most_common(3)
    return {"trials": sum(reasons.values()), "most_common": top[0][0] if top else None,
            "reasons": dict(top), "workers": len(worker_errors),
            **({"worker_errors": sorted(set(worker_errors))[:3]} if worker_errors else {})}


def _study_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "study"


def _states_text(states: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in states.items()) or "no trials ran"


def compare(
    data: str | Path | pd.DataFrame | np.ndarray | None = None,
    target: str | None = None,
    *,
    strategies: Sequence[str] = ("random", "tpe"),
    seeds: int | Sequence[int] = 3,
    out: str | Path = "runs/compare",
    target_score: float | None = None,
    y: np.ndarray | pd.Series | None = None,
    callbacks: Sequence[TrialCallback] = (),
    png: str | Path | None = None,
    on_run: Callable[[dict[str, Any]], None] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Tune the same data with each strategy and seed under the same budget, and compare:
    best validation score over time, time to reach `target_score` (default: the score every
    run reached) and final test scores with 95% confidence intervals. Writes compare.html and
    compare.json into `out` (each run keeps its own directory there); returns the summary.

    >>> nntune.compare(df, target="churned", strategies=["random", "tpe", "gp"], seeds=3, trials=30)
    """
    from .search import STRATEGIES

    names = [s.strip() for s in (strategies.split(",") if isinstance(strategies, str) else strategies) if s.strip()]
    if len(names) < 1:
        raise ConfigError("compare needs at least one strategy, e.g. random,tpe")
    for name in names:
        check_choice("strategy", name, STRATEGIES)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ConfigError("compare needs at least one seed")
    if isinstance(data, str | Path):
        options["data"], data = str(data), None
    checked = make_config(options.get("config"), target=target, **{k: v for k, v in options.items() if k != "config"})
    if len(checked.search.objectives) > 1:
        raise ConfigError("compare ranks strategies on one score: leave out search.objectives")
    out = claim(out, is_compare_dir, "a directory of nntune comparison runs")
    claim_figures(png)
    runs = []
    for name in names:
        for seed in seed_list:
            study = f"{name}-seed{seed}"
            result = tune(data, target, y=y, strategy=name, seed=seed, out=out / study, study=study,
                          report=False, callbacks=callbacks, **options)
            runs.append({"strategy": name, "seed": seed, "study": result.study, "metric": result.metric,
                         "test_scores": result.test_scores, "run_dir": result.run_dir})
            if on_run is not None:
                on_run(runs[-1])
    return render_comparison(out, runs, target_score, png=png)


def ablate(run_dir: str | Path, out: str | Path | None = None, *, techniques: Sequence[str] | None = None,
           seeds: int | Sequence[int] = 3, cv: int = 3, data: Any = None, y: Any = None,
           on_step: Callable[[str], None] | None = None, png: str | Path | None = None) -> dict[str, Any]:
    """Which parts of the tuned recipe matter: retrain the run's best configuration with one
    technique switched off at a time (dropout, batch/layer/weight norm, weight decay, L1, L2,
    early stopping, learning-rate schedule, gradient clipping, skip connections, label
    smoothing, augmentation), on the same `cv` folds and `seeds`, and report each one's effect
    on the validation score and training time with 95% confidence intervals. A technique the
    configuration does not use is reported as not applicable. Writes `ablation.html` and
    `ablation.json` (default in the run directory); returns the numbers.

    >>> nntune.ablate("runs/churn", seeds=3, cv=5)
    """
    from .execution._ablate import TECHNIQUES
    from .execution._ablate import ablate as run_ablation

    known = [t.name for t in TECHNIQUES]
    for name in techniques or ():
        check_choice("technique", name, known)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ConfigError("ablate needs at least one seed")
    if cv < 2:
        raise ConfigError(f"cv must be at least 2 for an ablation; got {cv}")
    run_dir = Path(run_dir)
    target = Path(out) if out is not None else run_dir / "ablation.html"
    claim_page(target, target.with_suffix(".json"), "techniques")
    claim_figures(png)
    result = read_run(run_dir)
    study = optuna.load_study(study_name=result["study"], storage=get_storage(result["storage"]))
    attrs = study.user_attrs
    if attrs.get("family") == "custom":
        raise ConfigError("ablate rebuilds the model from its family; a custom build_model run cannot be ablated yet")
    plan = plan_of_study(attrs, data, y, cv=cv, in_memory_hint=(
        f"run '{run_dir}' was tuned on in-memory data: pass it as nntune.ablate(run, data=...)"))
    params = {**plan.fixed, **result["best_params"]}
    base, rows = run_ablation(plan, params, seed_list, pick_device(plan.cfg.training.device),
                              list(techniques) if techniques else None, on_step)
    return render_ablation(target, result["study"], result["metric"], result["direction"], base, rows,
                           seed_list, cv, png=png)


def dashboard(run_or_storage: str | Path, host: str = "127.0.0.1", port: int = 8080,
              on_ready: Callable[[str], None] | None = None) -> None:
    """Serve optuna-dashboard on a run's study storage until interrupted (it reads the storage
    live, so a study running in another process updates as it goes). `run_or_storage` is a run
    directory, or a storage URL / journal file. `on_ready(url)` is called before serving.

    >>> nntune.dashboard("runs/churn")          # then open http://127.0.0.1:8080
    """
    try:
        import optuna_dashboard
    except ImportError:
        raise ConfigError("the dashboard needs optuna-dashboard: pip install 'nntune[dashboard]'") from None
    storage = _storage_of(run_or_storage)
    if on_ready is not None:
        on_ready(f"http://{host}:{port}/")
    optuna_dashboard.run_server(get_storage(storage), host=host, port=port)


def _storage_of(run_or_storage: str | Path) -> str:
    """A run directory's storage (from its result.json, or its study.db), or the URL as given."""
    text = str(run_or_storage)
    if "://" in text or is_journal(text):
        return text
    run_dir = Path(text)
    if (run_dir / "result.json").exists():
        return read_run(run_dir)["storage"]
    for name in ("study.db", "study.journal"):
        if (run_dir / name).exists():
            return storage_url(None, run_dir) if name == "study.db" else str(run_dir / name)
    raise ConfigError(f"'{text}' is neither a run directory (with result.json or study.db) nor a storage URL")


def show(run_dir: str | Path) -> dict[str, Any]:
    """A finished run: its result.json plus every trial of its study as plain dicts."""
    result = read_run(run_dir)
    return {"result": result, "trials": trial_records(result["storage"], result["study"])}


def predict(model_dir: str | Path, data: str | Path | pd.DataFrame, out: str | Path | None = None,
            proba: bool = False) -> pd.DataFrame:
    """Predictions of a saved model: a `prediction` column, or one probability column per
    class with `proba`. `data`: a table (CSV/Parquet/DataFrame; texts in the column the model
    was trained on) or, for image, signal and window models, samples in a .npy file (or .npz
    with 'X'). Written atomically to `out` (CSV or Parquet) when given; an existing file there
    is replaced only if it holds earlier predictions."""
    if out is not None:
        claim(out, is_predictions, "a predictions file nntune wrote")
    model = load(model_dir)
    if isinstance(data, str | Path) and Path(data).suffix.lower() in (".npy", ".npz"):
        frame = _read_samples(Path(data))
    else:
        frame = read_table(data) if isinstance(data, str | Path) else data
    index = frame.index if isinstance(frame, pd.DataFrame) else None
    if proba:
        table = pd.DataFrame(model.predict_proba(frame), columns=[f"proba_{c}" for c in model.classes_], index=index)
    else:
        table = pd.DataFrame({"prediction": model.predict(frame)}, index=index)
    if out is not None:
        write_table(Path(out), table)
    return table


def _read_samples(path: Path) -> np.ndarray:
    if not path.exists():
        raise DataError(f"data file '{path}' does not exist")
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as archive:
            if "X" not in archive:
                raise DataError(f"'{path}' holds {', '.join(archive.files)}; the samples are read from 'X'")
            return archive["X"]
    except ValueError as exc:  # object arrays are pickles: loading one would run its code
        kind = "an object array (pickled Python objects)" if "allow_pickle" in str(exc) else f"no array ({exc})"
        raise DataError(f"'{path}' holds {kind}, which nntune does not load; accepted: numeric or string "
                        "arrays saved with np.save") from None


def write_table(path: Path, table: pd.DataFrame) -> None:
    if path.suffix.lower() in (".parquet", ".pq"):
        import io
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        write_bytes(path, buffer.getvalue())
    else:
        write_text(path, table.to_csv(index=False))


# Where each compression method writes by default, inside the run directory.
COMPRESSED_DIRS = {"prune": "model-pruned", "quantize": "model-int8", "distill": "model-student"}


def compress(run_dir: str | Path, method: str = "prune", out: str | Path | None = None, *,
             sparsity: float | None = None, structured: bool | None = None, criterion: str | None = None,
             steps: int | None = None, finetune_epochs: int | None = None,
             student_units: int | float | None = None, temperature: float | None = None,
             alpha: float | None = None, epochs: int | None = None, student_dropout: float | None = None,
             data: Any = None,
             y: Any = None) -> dict[str, Any]:
    """Compress a run's tuned model and compare it with the original on the run's test rows
    (parameters, weight-file bytes, median latency, test score). Writes a model directory
    (default `<run_dir>/model-pruned`, `model-int8` or `model-student`) that `nntune.load` reads.

    prune: `sparsity` of the weights zeroed (L1 magnitude), or with `structured` that share of
    hidden neurons removed (ranked by the L2 norm of their `criterion` weights: outgoing or
    incoming), in `steps` with `finetune_epochs` of training on the run's rows between them.
    quantize: dynamic int8 Linear layers (CPU). distill: a student MLP `student_units` wide (a
    count, or a share of the teacher's width; default half) trained on the teacher's outputs
    softened by `temperature`, weighted `alpha` against the true labels (classification only),
    for `epochs` (default: the run's), with dropout `student_dropout` (default 0).

    >>> nntune.compress("runs/churn", method="prune", sparsity=0.5, structured=True)
    """
    from .compression import RunData, check_options
    from .compression import compress as run_compression

    options = {"sparsity": sparsity, "structured": structured, "criterion": criterion, "steps": steps,
               "finetune_epochs": finetune_epochs, "student_units": student_units,
               "temperature": temperature, "alpha": alpha, "epochs": epochs, "student_dropout": student_dropout}
    check_options(method, options)  # before the data is read
    run_dir = Path(run_dir)
    target = Path(out) if out is not None else run_dir / COMPRESSED_DIRS[method]
    _claim_compressed(run_dir, run_dir / "model", target)
    arrays = _run_arrays(run_dir, data, y, "compress")
    return run_compression(RunData(**arrays), method, target, **options)


def export(run_dir: str | Path, format: str = "onnx", out: str | Path | None = None, *,
           model: str | Path | None = None, data: Any = None, y: Any = None) -> dict[str, Any]:
    """Export a run's model as ONNX or TorchScript (default `<run_dir>/export/model.onnx` or
    `model.pt`), with its preprocessing beside it (`model.preprocessor.skops`) and a
    description (`model.onnx.json`). The exported network takes preprocessed float32 rows and
    returns probabilities or values. ONNX files are checked first: onnxruntime must match
    PyTorch within 1e-5 on the run's test rows. `model`: another model directory of the run
    (a pruned or distilled one) instead of `<run_dir>/model`.

    >>> nntune.export("runs/churn", format="onnx", out="churn.onnx")
    """
    from .compression import FORMATS
    from .compression import export as run_export

    check_choice("format", format, FORMATS)
    run_dir = Path(run_dir)
    target = Path(out) if out is not None else run_dir / "export" / f"model{FORMATS[format]}"
    _claim_export(target)
    arrays = _run_arrays(run_dir, data, y, "export", Path(model) if model is not None else None)
    return run_export(arrays["model"], arrays["model_dir"], target, format, arrays["X_test"])


def _claim_export(file: Path) -> None:
    """An export replaces only an earlier export: the network file and its sidecars are
    written where nothing is, or where the description beside them says nntune wrote them."""
    from .compression import FORMATS
    from .compression._export import sidecars

    preprocessor, description = sidecars(file)
    is_description = is_json_with("format", "input_columns")
    claim(description, is_description, "an nntune export description")
    if file.exists() and not description.exists():
        raise ConfigError(f"'{file}' exists and is not an nntune export (no {description.name} beside it); "
                          "choose another --out or remove it")
    # The preprocessing is shared by the exports of one stem (model.onnx, model.pt).
    stem = [sidecars(file.with_suffix(suffix))[1] for suffix in FORMATS.values()]
    if preprocessor.exists() and not any(is_description(d) for d in stem if d.exists()):
        raise ConfigError(f"'{preprocessor}' exists and is not an nntune export's preprocessing; "
                          "choose another --out or remove it")


def _run_arrays(run_dir: Path, data: Any, y: Any, action: str, model_dir: Path | None = None) -> dict[str, Any]:
    """A run's saved model and its training and test rows, encoded by the model's preprocessor
    (the plan `report` and `ablate` rebuild from the study)."""
    from .data import transform

    result = read_run(run_dir)
    study = optuna.load_study(study_name=result["study"], storage=get_storage(result["storage"]))
    if study.user_attrs.get("family") == "custom":
        raise ConfigError(f"{action} rebuilds the model from its family; a custom build_model run is not supported yet")
    model_dir = model_dir or run_dir / "model"
    predictor = load(model_dir)
    plan = plan_of_study(study.user_attrs, data, y, in_memory_hint=(
        f"run '{run_dir}' was tuned on in-memory data: pass it as nntune.{action}(run, data=...)"))
    table = plan.table
    return {"model": predictor, "model_dir": model_dir,
            "X_train": transform(predictor.preprocessor, table.features, plan.train_rows),
            "y_train": table.y[plan.train_rows],
            "X_test": transform(predictor.preprocessor, table.features, plan.test_rows),
            "y_test": table.y[plan.test_rows], "metric": result["metric"], "seed": plan.cfg.seed}
