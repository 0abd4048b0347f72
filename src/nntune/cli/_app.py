"""The `nntune` command: thin commands that parse options, call one API function, print."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from .._atomic import write_json
from ..config import parse_duration
from ..errors import NntuneError
from ..reports import params_table, run_report, summary_table
from ._progress import TrialProgress, WorkerProgress

app = typer.Typer(
    name="nntune", no_args_is_help=True, add_completion=False, rich_markup_mode="rich",
    help="Tune neural networks end to end: architecture and training recipe, searched with "
         "Optuna, scored by validation or k-fold CV, saved as a model you can predict with.",
)
out = Console()
err = Console(stderr=True)

Opt = Optional  # typer reads Optional[...] for options without a default


@app.command()
def tune(
    config: Annotated[Opt[Path], typer.Argument(help="YAML config; options below override its keys")] = None,
    data: Annotated[Opt[str], typer.Option(help="CSV, TSV or Parquet file, or an http(s) URL")] = None,
    dataset: Annotated[Opt[str], typer.Option(help="built-in: digits, breast_cancer, wine, iris, diabetes")] = None,
    target: Annotated[Opt[str], typer.Option(help="column to predict")] = None,
    task: Annotated[Opt[str], typer.Option(help="auto, binary, multiclass, regression")] = None,
    family: Annotated[Opt[str], typer.Option(help="model family (mlp)")] = None,
    strategy: Annotated[Opt[str], typer.Option(help="auto (default), grid, random, qmc, tpe, gp, cmaes, nsga2; depth: choose n_layers first, then tune")] = None,
    pruner: Annotated[Opt[str], typer.Option(help="auto (the strategy's choice), none, median, percentile, successive_halving, hyperband")] = None,
    trials: Annotated[Opt[int], typer.Option(help="number of trials (earlier trials of a resumed study count)")] = None,
    timeout: Annotated[Opt[str], typer.Option(help="limit for the whole command: 90s, 10m, 1h")] = None,
    cv: Annotated[Opt[str], typer.Option(help="k-fold cross-validation: folds (e.g. 5), auto (default: 5 folds on tables of up to 2,000 training rows, else one validation split) or none")] = None,
    population: Annotated[Opt[str], typer.Option(help="population training (plain MLPs on tables): auto (default: small networks on CPU), off, or K trials trained at once")] = None,
    final: Annotated[Opt[str], typer.Option(help="the delivered model: folds (the k fold models averaged), refit (retrained on all training rows), auto (folds with cross-validation, else refit where it is cheap)")] = None,
    metric: Annotated[Opt[str], typer.Option(help="accuracy, balanced_accuracy, f1, roc_auc, log_loss, r2, rmse, mae")] = None,
    objectives: Annotated[Opt[str], typer.Option(help="several objectives: the metric, then params, latency, train_time (e.g. accuracy,params)")] = None,
    constraint: Annotated[Opt[list[str]], typer.Option(help="a limit such as 'params<=50000' (repeatable)")] = None,
    pick: Annotated[Opt[str], typer.Option(help="model from the Pareto front: first, knee, or an objective's name")] = None,
    max_epochs: Annotated[Opt[int], typer.Option(help="epochs per trial before early stopping")] = None,
    patience: Annotated[Opt[int], typer.Option(help="early-stopping patience in epochs")] = None,
    test_size: Annotated[Opt[float], typer.Option(help="share held out for the final test")] = None,
    study: Annotated[Opt[str], typer.Option(help="study name (default: the data's name)")] = None,
    storage: Annotated[Opt[str], typer.Option(envvar="NNTUNE_STORAGE", show_envvar=True, help="SQLAlchemy URL (sqlite:///..., postgresql://...) or a .journal file (default: sqlite in the run dir); a password is better left to PGPASSWORD or ~/.pgpass")] = None,
    workers: Annotated[Opt[int], typer.Option(help="trial processes sharing the study on this machine")] = None,
    backend: Annotated[Opt[str], typer.Option(help="local (processes) or ray (tasks on a Ray cluster)")] = None,
    address: Annotated[Opt[str], typer.Option(help="Ray cluster: auto or HOST:PORT (default: start a local one)")] = None,
    cpus_per_trial: Annotated[Opt[float], typer.Option(help="Ray: CPUs reserved per trial")] = None,
    gpus_per_trial: Annotated[Opt[float], typer.Option(help="Ray: GPUs reserved per trial")] = None,
    heartbeat: Annotated[Opt[float], typer.Option(help="seconds between trial heartbeats (database storage)")] = None,
    retries: Annotated[Opt[int], typer.Option(help="times a trial whose worker died is run again")] = None,
    out_dir: Annotated[Opt[Path], typer.Option("--out", help="run directory (default: runs/<study>)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the study (or start it)")] = False,
    seed: Annotated[Opt[int], typer.Option(help="seed for splits, sampler and weights")] = None,
    threads: Annotated[Opt[int], typer.Option(help="torch threads (default: available cores)")] = None,
    device: Annotated[Opt[str], typer.Option(help="auto, cpu, cuda, mps")] = None,
    warm_start: Annotated[Opt[str], typer.Option(help="try the best configurations of an earlier run first: RUN_DIR, STORAGE or STORAGE#STUDY")] = None,
    cocktail: Annotated[bool, typer.Option("--cocktail", help="search every regulariser as an on/off switch with a conditional strength")] = False,
    depth_trials: Annotated[Opt[int], typer.Option(help="depth strategy: trials at each depth")] = None,
    depth_max: Annotated[Opt[int], typer.Option(help="depth strategy: the deepest network tried")] = None,
    unlabeled: Annotated[Opt[str], typer.Option(help="rows without labels for autoencoder pretraining (same feature columns)")] = None,
    pretrain_epochs: Annotated[Opt[int], typer.Option(help="autoencoder pretraining epochs of the hidden layers (0: off)")] = None,
    pretrained: Annotated[Opt[str], typer.Option(help="transfer learning: start from a model directory or .safetensors file")] = None,
    freeze_layers: Annotated[Opt[int], typer.Option(help="with --pretrained: hidden layers kept frozen")] = None,
    curriculum: Annotated[Opt[str], typer.Option(help="none, easy_first, hard_first (anti-curriculum) or random")] = None,
    curriculum_column: Annotated[Opt[str], typer.Option(help="curriculum difficulty from this column (higher = harder) instead of a reference model's loss")] = None,
    pacing: Annotated[Opt[str], typer.Option(help="curriculum pacing: linear, root or step")] = None,
    pacing_start: Annotated[Opt[float], typer.Option(help="curriculum: share of the (easiest) rows in epoch 1")] = None,
    pacing_full: Annotated[Opt[float], typer.Option(help="curriculum: share of max_epochs after which every row is used")] = None,
    pretrain_loss: Annotated[Opt[str], typer.Option(help="autoencoder pretraining loss: mse or bce (inputs in [0, 1])")] = None,
    pretrain_noise: Annotated[Opt[float], typer.Option(help="denoising pretraining: std of the input noise")] = None,
    pretrained_lr_scale: Annotated[Opt[float], typer.Option(help="with --pretrained: their learning rate is the recipe's times this")] = None,
    compress: Annotated[Opt[str], typer.Option(help="compress the tuned model afterwards: prune, quantize, distill (comma-separated)")] = None,
    kind: Annotated[Opt[str], typer.Option(help="auto, table, image, signal, timeseries, text, graph (default: detected)")] = None,
    labels: Annotated[Opt[str], typer.Option(help="images or signals in a .npy file: the labels' .npy file")] = None,
    text_column: Annotated[Opt[str], typer.Option(help="text: the column of texts (a position such as 1 for files without a header)")] = None,
    tokenizer: Annotated[Opt[str], typer.Option(help="text: word or bpe, trained on the training texts")] = None,
    vocab_size: Annotated[Opt[int], typer.Option(help="text: the largest vocabulary")] = None,
    seq_len: Annotated[Opt[int], typer.Option(help="text: the most tokens per text")] = None,
    synonyms: Annotated[Opt[str], typer.Option(help="text augmentation: a CSV of word,synonym rows")] = None,
    time_column: Annotated[Opt[str], typer.Option(help="time series: the column of time stamps")] = None,
    lookback: Annotated[Opt[int], typer.Option(help="time series: the longest window of past steps")] = None,
    horizon: Annotated[Opt[int], typer.Option(help="time series: forecast this many steps ahead")] = None,
    graph: Annotated[Opt[str], typer.Option(help="graph: the Planetoid data set in the --data folder (Cora)")] = None,
    augment: Annotated[bool, typer.Option("--augment", help="search the data kind's augmentations (off by default)")] = False,
    no_report: Annotated[bool, typer.Option("--no-report", help="do not write report.html into the run directory")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as one JSON object")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="print nothing but errors")] = False,
) -> None:
    """Tune a network on a table, retrain the best on all training rows, test it, save it."""
    from .. import api

    cfg = api.make_config(
        config, data=str(data) if data else None, dataset=dataset, target=target, task=task,
        family=family, strategy=strategy, pruner=pruner, trials=trials,
        timeout=parse_duration(timeout) if timeout is not None else None, cv=cv, final=final, metric=metric,
        population=population, max_epochs=max_epochs, patience=patience, test_size=test_size, study=study,
        storage=storage, out=str(out_dir) if out_dir else None, resume=resume or None,
        seed=seed, threads=threads, device=device, workers=workers, backend=backend,
        address=address, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
        heartbeat=heartbeat, retries=retries, objectives=objectives, constraints=constraint or None, pick=pick,
        warm_start=warm_start, cocktail=cocktail or None, depth_trials=depth_trials, depth_max=depth_max,
        unlabeled=unlabeled, pretrain_epochs=pretrain_epochs, pretrained=pretrained, freeze_layers=freeze_layers,
        curriculum=curriculum, curriculum_column=curriculum_column, pacing=pacing, compress=compress,
        pacing_start=pacing_start, pacing_full=pacing_full, pretrain_loss=pretrain_loss,
        pretrain_noise=pretrain_noise, pretrained_lr_scale=pretrained_lr_scale,
        kind=kind, labels=labels, text_column=text_column, tokenizer=tokenizer, vocab_size=vocab_size,
        seq_len=seq_len, synonyms=synonyms, time_column=time_column, lookback=lookback, horizon=horizon,
        graph=graph, augment=augment or None,
    )
    if cfg.search.timeout is not None:
        # The limit is for the whole command: the seconds spent starting Python and importing
        # torch count too.
        cfg.search.timeout = max(1.0, cfg.search.timeout - _seconds_since_start())
    if quiet or as_json:
        result = api.tune(config=cfg, report=not no_report)
    else:
        with TrialProgress(err) as progress:
            result = api.tune(config=cfg, callbacks=[progress.callback], on_start=progress.start,
                              report=not no_report)
    if as_json:
        print(json.dumps(result.to_json()))
    elif not quiet:
        out.print(summary_table(result.to_json()))
        out.print(params_table(result.best_params))
        for summary in result.compression:
            _print_compression(summary)


@app.command()
def worker(
    storage: Annotated[str, typer.Option(envvar="NNTUNE_STORAGE", show_envvar=True, help="the study's storage: postgresql://..., sqlite:///... or a .journal file")],
    study: Annotated[str, typer.Option(help="name of the study to join")],
    data: Annotated[Opt[str], typer.Option(help="read the data from here instead (checked against the study's checksum)")] = None,
    timeout: Annotated[Opt[str], typer.Option(help="stop after this long (default: the run's own deadline)")] = None,
    threads: Annotated[Opt[int], typer.Option(help="torch threads (default: idle cores)")] = None,
    wait: Annotated[Opt[str], typer.Option(help="wait this long for the study to appear (a driver started at the same time)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="print nothing but errors")] = False,
) -> None:
    """Join a study as one more worker: runs its trials until it has them all (or its time is up)."""
    from .. import api

    seconds = parse_duration(timeout) if timeout is not None else None
    options = {"data": data, "timeout": seconds, "threads": threads, "wait": parse_duration(wait, "wait") if wait else 0.0}
    if quiet:
        ran = api.worker(storage, study, **options)
    else:
        with WorkerProgress(err, study) as progress:
            ran = api.worker(storage, study, **options, callbacks=[progress.callback], on_start=progress.start)
        out.print(f"worker done: {ran} trials run for study '{study}'")


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="model directory written by nntune tune")],
    data: Annotated[Path, typer.Option(help="CSV, TSV or Parquet file with the training columns")],
    out_file: Annotated[Opt[Path], typer.Option("--out", help="CSV or Parquet file (default: stdout)")] = None,
    proba: Annotated[bool, typer.Option("--proba", help="class probabilities instead of labels")] = False,
) -> None:
    """Predict with a saved model."""
    from .. import api

    table = api.predict(model, data, out=out_file, proba=proba)
    if out_file is None:
        sys.stdout.write(table.to_csv(index=False))


@app.command()
def show(
    run: Annotated[Path, typer.Argument(help="run directory (holds result.json)")],
    as_json: Annotated[bool, typer.Option("--json", help="print result and trials as JSON")] = False,
) -> None:
    """Show a finished run: the summary, the best configuration and the top-10 trials."""
    from .. import api

    shown = api.show(run)
    if as_json:
        print(json.dumps(shown, default=str))
    else:
        out.print(run_report(shown["result"], shown["trials"]))


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="run directory (holds result.json)")],
    output: Annotated[Opt[Path], typer.Option("--out", "-o", help="HTML file (default: RUN/report.html)")] = None,
    baselines: Annotated[Opt[bool], typer.Option("--baselines/--no-baselines", help="also train the untuned default network and gradient boosting on the same split (default: when cheap)")] = None,
    png: Annotated[Opt[Path], typer.Option(help="also write every figure as PNG into this directory")] = None,
) -> None:
    """Write the run's HTML report: summary, best configuration, plots of the search, diagnostics."""
    from .. import api

    path = api.report(run, output, baselines=baselines, png=png)
    out.print(f"report written: {path}")


@app.command()
def compare(
    config: Annotated[Opt[Path], typer.Argument(help="YAML config; options below override its keys")] = None,
    strategies: Annotated[str, typer.Option(help="comma-separated: grid, random, qmc, tpe, gp, cmaes")] = "random,tpe",
    seeds: Annotated[int, typer.Option(help="runs per strategy (seeds 0..N-1)")] = 3,
    data: Annotated[Opt[Path], typer.Option(help="CSV, TSV or Parquet file")] = None,
    dataset: Annotated[Opt[str], typer.Option(help="built-in: digits, breast_cancer, wine, iris, diabetes")] = None,
    target: Annotated[Opt[str], typer.Option(help="column to predict")] = None,
    trials: Annotated[Opt[int], typer.Option(help="trials per run")] = None,
    timeout: Annotated[Opt[str], typer.Option(help="limit per run: 90s, 10m")] = None,
    cv: Annotated[Opt[int], typer.Option(help="k-fold cross-validation")] = None,
    max_epochs: Annotated[Opt[int], typer.Option(help="epochs per trial before early stopping")] = None,
    target_score: Annotated[Opt[float], typer.Option(help="score for 'time to reach' (default: the one every run reached)")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="directory for the runs, compare.html and compare.json")] = Path("runs/compare"),
    threads: Annotated[Opt[int], typer.Option(help="torch threads")] = None,
    png: Annotated[Opt[Path], typer.Option(help="also write every figure as PNG into this directory")] = None,
) -> None:
    """Run several strategies on the same data, budget and seeds; compare them side by side."""
    from .. import api

    options = {k: v for k, v in {"data": str(data) if data else None, "dataset": dataset, "trials": trials,
                                 "timeout": parse_duration(timeout) if timeout else None, "cv": cv,
                                 "max_epochs": max_epochs, "threads": threads}.items() if v is not None}
    def finished(run: dict) -> None:
        score = run["test_scores"].get(run["metric"])
        err.print(f"{run['strategy']} seed {run['seed']}: test {run['metric']} {score:.4f} ({run['run_dir']})")

    with err.status("comparing strategies"):
        summary = api.compare(target=target, strategies=strategies.split(","), seeds=seeds, out=out_dir,
                              target_score=target_score, config=config, png=png, on_run=finished, **options)
    for row in summary["strategies"]:
        out.print(f"{row['strategy']:>8}: test {summary['metric']} {row['test']:.4f} ± {row['test_ci']:.4f}, "
                  f"reached {summary['target']:.4f} in {row['reached']} runs")
    out.print(f"report: {out_dir / 'compare.html'}")


@app.command()
def ablate(
    run: Annotated[Path, typer.Argument(help="run directory (holds result.json)")],
    techniques: Annotated[Opt[str], typer.Option(help="comma-separated subset (default: all): dropout, batch_norm, weight_decay, early_stopping, lr_schedule, gradient_clipping, ...")] = None,
    seeds: Annotated[int, typer.Option(help="seeds per configuration (0..N-1)")] = 3,
    cv: Annotated[int, typer.Option(help="folds per seed")] = 3,
    output: Annotated[Opt[Path], typer.Option("--out", "-o", help="HTML file (default: RUN/ablation.html; numbers in .json beside it)")] = None,
    png: Annotated[Opt[Path], typer.Option(help="also write every figure as PNG into this directory")] = None,
) -> None:
    """Switch off one technique of the best configuration at a time and measure what it did."""
    from .. import api

    chosen = [t.strip() for t in techniques.split(",") if t.strip()] if techniques else None
    with err.status("ablating") as status:
        numbers = api.ablate(run, output, techniques=chosen, seeds=seeds, cv=cv, png=png,
                             on_step=lambda name: status.update(f"ablating: without {name}"))
    out.print(f"validation {numbers['metric']} as tuned: {numbers['base_score']:.4f}")
    for row in numbers["techniques"]:
        if not row["applicable"]:
            out.print(f"  {row['technique']:>18}: not applicable ({row['what']})")
        else:
            out.print(f"  {row['technique']:>18}: {row['score_effect']:+.4f} ± {row['score_effect_ci']:.4f} "
                      f"without it ({row['verdict']}), {row['seconds_effect']:+.2f} s per fit")


@app.command()
def dashboard(
    run: Annotated[str, typer.Argument(help="run directory, storage URL or .journal file")],
    host: Annotated[str, typer.Option(help="address to listen on (127.0.0.1: this machine only)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
) -> None:
    """Serve optuna-dashboard on a run's study (live, also while the study is running)."""
    from .. import api

    api.dashboard(run, host=host, port=port,
                  on_ready=lambda url: err.print(f"optuna-dashboard on {url} (Ctrl-C to stop)"))


@app.command()
def schema(
    output: Annotated[Opt[Path], typer.Option("--out", "-o", help="write to a file instead of stdout")] = None,
) -> None:
    """Print the JSON Schema of the config file, for editors that validate and complete YAML."""
    from .. import schema as config_schema

    if output is None:
        print(json.dumps(config_schema(), indent=2))
    else:
        from .._places import claim, is_json_with

        claim(output, is_json_with("title", "properties"), "a JSON Schema nntune wrote")
        write_json(output, config_schema())


@app.command()
def compress(
    run: Annotated[Path, typer.Argument(help="run directory (holds result.json)")],
    method: Annotated[str, typer.Option(help="prune, quantize (dynamic int8) or distill (a narrower student)")],
    sparsity: Annotated[Opt[float], typer.Option(help="prune: share of weights (with --structured: of hidden neurons) removed, in (0, 1); default 0.8")] = None,
    structured: Annotated[Opt[bool], typer.Option("--structured/--unstructured", help="prune: remove whole neurons (smaller layers) or single weights (default)")] = None,
    criterion: Annotated[Opt[str], typer.Option(help="structured prune: rank neurons by the L2 norm of their outgoing (default) or incoming weights")] = None,
    steps: Annotated[Opt[int], typer.Option(help="prune: steps to the target sparsity (default 3)")] = None,
    finetune_epochs: Annotated[Opt[int], typer.Option(help="prune: training epochs after each step (default 3)")] = None,
    student_units: Annotated[Opt[int], typer.Option(help="distill: the student's width (default: half the teacher's)")] = None,
    temperature: Annotated[Opt[float], typer.Option(help="distill: softening temperature T (default 4)")] = None,
    alpha: Annotated[Opt[float], typer.Option(help="distill: weight of the soft loss against the true labels, in [0, 1] (default 0.7)")] = None,
    student_dropout: Annotated[Opt[float], typer.Option(help="distill: the student's dropout (default 0)")] = None,
    epochs: Annotated[Opt[int], typer.Option(help="distill: the student's training epochs (default: the run's)")] = None,
    output: Annotated[Opt[Path], typer.Option("--out", "-o", help="model directory (default: RUN/model-pruned, model-int8 or model-student)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the comparison as one JSON object")] = False,
) -> None:
    """Prune, quantize or distill the run's model; save it and compare it with the original."""
    from .. import api

    with err.status(f"compressing: {method}"):
        summary = api.compress(run, method, output, sparsity=sparsity, structured=structured, criterion=criterion,
                               steps=steps, finetune_epochs=finetune_epochs, student_units=student_units,
                               temperature=temperature, alpha=alpha, student_dropout=student_dropout, epochs=epochs)
    if as_json:
        print(json.dumps(summary, default=str))
        return
    _print_compression(summary)


def _print_compression(summary: dict) -> None:
    """The compressed model beside the original: size, speed and test score."""
    out.print(f"{summary['method']:>12} {'params':>10} {'nonzero':>10} {'bytes':>10} {'latency ms':>11} "
              f"{summary['original']['metric']:>10}")
    for side in ("original", "compressed"):
        row = summary[side]
        score = f"{row['score']:.4f}" if row["score"] is not None else "-"
        out.print(f"{side:>12} {row['params']:>10} {row['nonzero']:>10} {row['size_bytes']:>10} "
                  f"{row['latency_ms']:>11.3f} {score:>10}")
    out.print(f"model written: {summary['model_dir']}")


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="run directory (holds result.json)")],
    format: Annotated[str, typer.Option("--format", help="onnx (checked against onnxruntime) or torchscript")] = "onnx",
    output: Annotated[Opt[Path], typer.Option("--out", "-o", help="network file (default: RUN/export/model.onnx or model.pt); its preprocessing (model.preprocessor.skops) and description (model.onnx.json) go beside it")] = None,
    model: Annotated[Opt[Path], typer.Option(help="another model directory of the run, e.g. RUN/model-pruned (default: RUN/model)")] = None,
) -> None:
    """Export the run's network as ONNX or TorchScript, with its preprocessing beside it."""
    from .. import api

    with err.status(f"exporting: {format}"):
        info = api.export(run, format, output, model=model)
    out.print(f"exported: {info['path']} (preprocessing: {info['preprocessor']}, "
              f"description: {info['description']})")


_started = time.time()  # when this command began; see main()


class _Warnings(logging.Handler):
    """nntune's warnings (a retrain cut short, ...) as one line each on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        err.print(f"[yellow]warning:[/] {escape(record.getMessage())}", highlight=False, soft_wrap=True)


def _seconds_since_start() -> float:
    return max(0.0, time.time() - _started)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app; nntune's own errors become one line and exit code 2."""
    global _started
    _started = time.time()
    if argv is None:  # a real command: its clock started with the process, imports included
        import psutil

        try:
            _started = psutil.Process().create_time()
        except psutil.Error:
            pass
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    logger = logging.getLogger("nntune")
    if not any(isinstance(h, _Warnings) for h in logger.handlers):
        logger.addHandler(_Warnings())
    logger.setLevel(logging.ERROR if "--quiet" in args else logging.WARNING)
    try:
        app(args=args, prog_name="nntune", standalone_mode=False)
        if argv is None:
            # Everything is written and closed (atomic files, committed study): skip the
            # interpreter's module teardown, which takes torch a second or more.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
    except NntuneError as exc:
        if debug:
            raise
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("interrupted; finished trials are saved in the study (resume with --resume)")
        sys.exit(130)
    except Exception as exc:  # usage errors from the option parser, and anything unexpected
        if hasattr(exc, "exit_code") and hasattr(exc, "show"):  # the parser's usage errors
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Exit":
            sys.exit(getattr(exc, "exit_code", 0))
        if debug:
            raise
        err.print(f"[bold red]error:[/] {type(exc).__name__}: {escape(str(exc))} (run with --debug for the traceback)",
                  highlight=False, soft_wrap=True)
        sys.exit(1)
