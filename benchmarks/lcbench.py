"""nntune's search strategies against the anchors on the LCBench surrogate, side by side.

Every method tunes the same 7-parameter MLP space (batch size, learning rate, momentum, weight
decay, layers, units, dropout) on the development tasks of ../shared/lcbench, paying epochs
through one `Problem` (benchmarks/_lcbench_problem.py), at budgets of 10, 25 and 50 full-training
equivalents (1 = 52 epochs). Reported per budget: mean regret with scores capped at the task's
real-data maximum, the uncapped regret, the share of runs whose best lies above that maximum,
and the mean rank (over task x seed). Then each method's own overhead per trial.

    make bench-env                                   # DEHB and SMAC3 in .venv-bench
    cd benchmarks && ../.venv-bench/bin/python lcbench.py [--seeds 5] [--tasks all] [--jobs 2]

Methods that plan for their budget (auto, the Hyperband-style ones) run once per budget; the
others run once at the largest budget and are read at each budget along the way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per run: runs go side by side

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lcbench_problem import DATA_MAX, DEV_TASKS, MAX_EPOCH, SPACE, Problem  # noqa: E402

BUDGETS = (10, 25, 50)


def nntune_method(strategy: str) -> Callable[[Problem, int], None]:
    def run(problem: Problem, seed: int) -> None:
        import nntune

        nntune.optimize(problem.steps, SPACE, budget=f"{int(problem.budget_epochs)} epochs",
                        strategy=strategy, max_epochs=MAX_EPOCH, seed=seed)
    return run


NNTUNE = {"nntune_auto": nntune_method("auto")}
BUDGET_AWARE = {"nntune_auto", "optuna_tpe_hyperband", "dehb", "smac_hb"}


def methods(names: list[str] | None) -> dict[str, Callable[[Problem, int], None]]:
    found = dict(NNTUNE)
    try:
        from _lcbench_anchors import ANCHORS
        found.update(ANCHORS)
    except ImportError as exc:  # DEHB/SMAC live in the benchmark environment
        print(f"anchors unavailable ({exc}); run with .venv-bench (make bench-env)", file=sys.stderr)
    if names:
        missing = [n for n in names if n not in found]
        if missing:
            raise SystemExit(f"unknown methods {missing}; available: {sorted(found)}")
        found = {n: found[n] for n in names}
    return found


def one_run(args: tuple[str, str, int, float]) -> dict:
    import torch

    torch.set_num_threads(1)
    name, task, seed, equivalents = args
    import logging

    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    problem = Problem(task, equivalents)
    started = time.perf_counter()
    methods([name])[name](problem, seed)
    seconds = time.perf_counter() - started
    budgets = [equivalents] if name in BUDGET_AWARE else [b for b in BUDGETS if b <= equivalents]
    return {"method": name, "task": task, "seed": seed, "seconds": seconds,
            "best": {b: problem.best_at(b, capped=False) for b in budgets}}


def table(results: list[dict], names: list[str]) -> str:
    lines = []
    for budget in BUDGETS:
        rows = {n: [] for n in names}
        for r in results:
            if budget in r["best"]:
                rows[r["method"]].append((r["task"], r["seed"], r["best"][budget]))
        # Only the (task, seed) cells every method finished, so a run cut short compares like with like.
        cells = [{(t, s) for t, s, _ in v} for v in rows.values() if v]
        keys = sorted(set.intersection(*cells)) if cells else []
        rows = {n: [(t, s, b) for t, s, b in v if (t, s) in set(keys)] for n, v in rows.items()}
        capped = {n: {(t, s): DATA_MAX[t] - min(b, DATA_MAX[t]) for t, s, b in v} for n, v in rows.items()}
        ranks = {n: [] for n in names}
        for key in keys:
            present = [n for n in names if key in capped[n]]
            order = sorted(present, key=lambda n: capped[n][key])
            for n in present:  # ties share the mean rank
                tied = [i + 1 for i, m in enumerate(order) if capped[m][key] == capped[n][key]]
                ranks[n].append(float(np.mean(tied)))
        lines += [f"\n### {budget} full-training equivalents\n",
                  "| method | capped regret | uncapped regret | best above DATA_MAX | mean rank | runs |",
                  "|---|---|---|---|---|---|"]
        order = sorted(names, key=lambda n: np.mean(list(capped[n].values())) if capped[n] else 9)
        for n in order:
            v = rows[n]
            if not v:
                continue
            uncapped = np.mean([DATA_MAX[t] - b for t, _, b in v])
            above = np.mean([b > DATA_MAX[t] for t, _, b in v])
            lines.append(f"| {n} | {np.mean(list(capped[n].values())):.4f} | {uncapped:+.4f} | {above:.0%} | "
                         f"{np.mean(ranks[n]):.2f} | {len(v)} |")
    return "\n".join(lines)


def overheads(names: list[str], sizes: tuple[int, ...], limit: float) -> str:
    """Each method's own seconds per trial (last 10% of the trials reached), at each size, and
    that time per epoch the trials reported (a trial reports up to 52; pruned ones fewer)."""
    from _lcbench_anchors import ANCHORS, overhead

    ANCHORS.update({n: _trial_budgeted(n) for n in NNTUNE})
    lines = ["| method | " + " | ".join(f"s/trial at {n} (ms/epoch)" for n in sizes) + " |",
             "|---|" + "---|" * len(sizes)]
    for name in names:
        cells = []
        for n in sizes:
            o = overhead(name, n, limit_seconds=limit)
            note = f", stopped at {o['trials_reached']}" if o["stopped_early"] else ""
            cells.append(f"{o['seconds_per_trial_last10pct']:.3f} ({o['ms_per_epoch_last10pct']:.2f}{note})")
            print(name, n, o, file=sys.stderr, flush=True)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _trial_budgeted(name: str) -> Callable:
    strategy = name.removeprefix("nntune_")

    def run(problem, seed: int) -> None:
        import nntune

        nntune.optimize(problem.steps, SPACE, budget=problem.n_trials, strategy=strategy,
                        max_epochs=MAX_EPOCH, seed=seed)
    return run


def main() -> None:
    if os.environ.get("PYTHONHASHSEED") != "0":
        # SMAC orders its start points by hashing configurations: fixed, so seeded runs repeat.
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed+seeds-1")
    parser.add_argument("--tasks", default="all", help="comma-separated task ids from DEV_TASKS, or all")
    parser.add_argument("--methods", default=None, help="comma-separated (default: all available)")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side, one core each")
    parser.add_argument("--out", default="lcbench_results.json", help="results, written as runs finish")
    parser.add_argument("--table", default=None, help="only print the tables of results files (comma-separated)")
    parser.add_argument("--overhead", action="store_true", help="measure each method's own time per trial")
    args = parser.parse_args()
    tasks = DEV_TASKS if args.tasks == "all" else args.tasks.split(",")
    if not set(tasks) <= set(DEV_TASKS):
        raise SystemExit(f"use only the development tasks: {DEV_TASKS}")
    names = list(methods(args.methods.split(",") if args.methods else None))
    if args.table:
        results = [r for path in args.table.split(",") for r in json.loads(Path(path).read_text())]
        for r in results:  # JSON keys are strings
            r["best"] = {int(float(k)): v for k, v in r["best"].items()}
        print(table(results, sorted({r["method"] for r in results})))
        return
    if args.overhead:
        print(overheads(names, (100, 300, 1000), limit=600))
        return
    jobs = []  # seed by seed, so that a run cut short still compares every method on the same cells
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for task in tasks:
            for name in names:
                for budget in (BUDGETS if name in BUDGET_AWARE else (max(BUDGETS),)):
                    jobs.append((name, task, seed, budget))
    started = time.perf_counter()
    results = []
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(one_run, job) for job in jobs]
        for i, future in enumerate(futures, 1):
            results.append(future.result())
            Path(args.out).write_text(json.dumps(results))
            print(f"\r{i}/{len(jobs)} runs, {time.perf_counter() - started:.0f} s", end="", file=sys.stderr)
    print(file=sys.stderr)
    print(table(results, names))
    per_method = {n: sum(r["seconds"] for r in results if r["method"] == n) for n in names}
    print("\nwall seconds per method (summed over runs):",
          ", ".join(f"{n} {s:.0f}" for n, s in per_method.items()))


if __name__ == "__main__":
    main()
