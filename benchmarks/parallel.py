"""Parallel tuning: trials per minute with 1 and 2 workers, and what each storage costs per trial.

Part 1, throughput. The same CPU-bound study (digits, a fixed 2 x 128 MLP, batch 32, a fixed
number of epochs, so that every trial does the same work) runs three ways, side by side:
nntune with 1 worker (in process), nntune with `workers=2` (this process and one spawned
worker sharing a SQLite study, one torch thread each), and the plain Optuna way to parallelise
the same objective, `study.optimize(objective, n_jobs=2)` (two threads in one process).
Reported: trials per minute once every worker runs (from the first trial of the last worker to
start, to the last trial's end: the capacity of N workers) and over the whole call (the
seconds this process searches alone while the other one starts, and the final model, included:
what a user waits for).

Part 2, storage overhead. 1,000 trials of an objective that trains nothing but talks to the
storage as a real trial does (3 parameters, 10 reported epochs, the trial attributes nntune
records), with Optuna's random sampler, on SQLite, a journal file and PostgreSQL (127.0.0.1):
milliseconds per trial and SQL statements per trial, through nntune's trial loop and through
plain `study.optimize`, and the time per trial at trials 1-100 and 901-1000.

Run from the repository root (PostgreSQL on 127.0.0.1:5432, trust auth):

    .venv/bin/python benchmarks/parallel.py
    .venv/bin/python benchmarks/parallel.py --trials 20 --storage-trials 200   # quick look
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

FIXED_SPACE = {"n_layers": 2, "units": 128, "batch_size": 32, "optimizer": "adam", "dropout": 0.0,
               "norm": "none", "schedule": "constant", "activation": "relu", "weight_decay": 0.0}
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def steady_rate(study) -> float:
    """Complete trials per minute once every worker is running: from the first trial of the
    last worker to start, to the last trial's end."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    firsts = {}
    for t in sorted(done, key=lambda t: t.datetime_start):
        firsts.setdefault(t.user_attrs.get("worker", {}).get("pid"), t.datetime_start)
    begin, end = max(firsts.values()), max(t.datetime_complete for t in done)
    inside = [t for t in done if t.datetime_complete >= begin]
    return 60.0 * len(inside) / (end - begin).total_seconds()


def search_rate(study) -> tuple[float, int]:
    """Complete trials per minute between the first start and the last end, and their count."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    return 60.0 * len(done) / span, len(done)


def nntune_run(workers: int, trials: int, epochs: int, out: Path) -> dict:
    import nntune

    started = time.perf_counter()
    result = nntune.tune(dataset="digits", trials=trials, workers=workers, threads=1, out=out / f"w{workers}",
                         study=f"w{workers}", space={**FIXED_SPACE, "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
                         max_epochs=epochs, patience=epochs, strategy="random")
    wall = time.perf_counter() - started
    rate, n = search_rate(result.study)
    return {"method": f"nntune, {workers} worker{'s' * (workers > 1)}", "search_rate": rate,
            "steady_rate": steady_rate(result.study), "wall_rate": 60.0 * n / wall, "trials": n, "wall": wall}


def optuna_threads_run(trials: int, epochs: int) -> dict:
    """The plain alternative: the same objective, two threads of one process (n_jobs=2)."""
    import optuna
    import torch

    from nntune import make_config
    from nntune.execution import pick_device, prepare
    from nntune.search import Objective

    torch.set_num_threads(1)
    cfg = make_config(dataset="digits", space={**FIXED_SPACE, "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
                      max_epochs=epochs, patience=epochs)
    started = time.perf_counter()
    plan = prepare(cfg)
    objective = Objective(plan.folds(), plan.table.task, len(plan.table.classes), plan.metric, plan.space,
                          plan.fixed, plan.model, pick_device("cpu"), 0)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0),
                                pruner=optuna.pruners.NopPruner())  # as nntune: no pruning
    study.optimize(objective, n_trials=trials, n_jobs=2)
    wall = time.perf_counter() - started
    rate, n = search_rate(study)
    return {"method": "Optuna n_jobs=2 (threads)", "search_rate": rate, "steady_rate": rate,
            "wall_rate": 60.0 * n / wall, "trials": n, "wall": wall}


def storage_objective(trial) -> float:
    """What a trial does to the storage, minus the training: params, epochs, attributes."""
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    units = trial.suggest_int("units", 16, 512, log=True)
    trial.suggest_categorical("optimizer", ["adam", "sgd", "adamw"])
    for epoch in range(1, 11):
        trial.report(lr * epoch / units, epoch)
    for key in ("curves", "train_seconds", "n_params", "fold_scores", "val_loss", "epochs"):
        trial.set_user_attr(key, [0.1] * 10 if key == "curves" else 1.0)
    return lr / units


def count_statements(storage) -> list[int]:
    from sqlalchemy import event

    counter = [0]
    engine = getattr(storage, "engine", None)
    if engine is not None:
        event.listen(engine, "before_cursor_execute", lambda *args: counter.__setitem__(0, counter[0] + 1))
    return counter


def storage_run(kind: str, url: str, loop: str, n: int) -> dict:
    import optuna

    from nntune.search import get_storage, run_trials

    storage = get_storage(url, heartbeat=10 if "://" in url else None)
    statements = count_statements(storage)
    study = optuna.create_study(study_name=f"s{uuid.uuid4().hex[:8]}", storage=storage,
                                sampler=optuna.samplers.RandomSampler(seed=0))
    stamps = []

    def stamp(study, trial):
        stamps.append(time.perf_counter())

    before = statements[0]
    started = time.perf_counter()
    if loop == "nntune":
        run_trials(study, storage_objective, n, lambda: None, callbacks=[stamp])
    else:
        study.optimize(storage_objective, n_trials=n, callbacks=[stamp])
    total = time.perf_counter() - started
    gaps = [b - a for a, b in zip([started, *stamps[:-1]], stamps, strict=True)]
    return {"storage": kind, "loop": loop, "ms": 1000 * total / n,
            "first100": 1000 * statistics.mean(gaps[:100]), "last100": 1000 * statistics.mean(gaps[-100:]),
            "queries": (statements[0] - before) / n if hasattr(storage, "engine") else None}


def postgres_database() -> tuple[str, callable]:
    import psycopg

    name = f"nntune_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        with psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    return f"postgresql://postgres@127.0.0.1:5432/{name}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100, help="trials per throughput run")
    parser.add_argument("--epochs", type=int, default=15, help="epochs per trial")
    parser.add_argument("--storage-trials", type=int, default=1000)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-storage", action="store_true")
    args = parser.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.skip_throughput:
            rows = [nntune_run(1, args.trials, args.epochs, tmp), nntune_run(2, args.trials, args.epochs, tmp),
                    optuna_threads_run(args.trials, args.epochs)]
            base = rows[0]
            print(f"\n### Trials per minute ({args.trials} trials of {args.epochs} epochs, digits, fixed 2x128 MLP)\n")
            print("| method | trials/min, all workers running | x vs 1 | trials/min, whole call | x vs 1 | wall s |")
            print("|---|---:|---:|---:|---:|---:|")
            for row in rows:
                print(f"| {row['method']} | {row['steady_rate']:.1f} | {row['steady_rate'] / base['steady_rate']:.2f} "
                      f"| {row['wall_rate']:.1f} | {row['wall_rate'] / base['wall_rate']:.2f} | {row['wall']:.1f} |")
        if not args.skip_storage:
            url, drop = postgres_database()
            results = []
            try:
                for kind, where in (("SQLite", f"sqlite:///{tmp / 'bench.db'}"), ("journal file", str(tmp / "bench.journal")),
                                    ("PostgreSQL", url)):
                    for loop in ("nntune", "optuna"):
                        if kind == "SQLite":
                            (tmp / "bench.db").unlink(missing_ok=True)
                        results.append(storage_run(kind, where, loop, args.storage_trials))
            finally:
                drop()
            print(f"\n### Storage overhead per trial ({args.storage_trials} trials, no training)\n")
            print("| storage | loop | ms/trial | ms/trial, trials 1-100 | ms/trial, last 100 | SQL statements/trial |")
            print("|---|---|---:|---:|---:|---:|")
            for r in results:
                queries = f"{r['queries']:.1f}" if r["queries"] is not None else "-"
                loop = "nntune run_trials" if r["loop"] == "nntune" else "Optuna study.optimize"
                print(f"| {r['storage']} | {loop} | {r['ms']:.1f} | {r['first100']:.1f} | {r['last100']:.1f} | {queries} |")


if __name__ == "__main__":
    main()
