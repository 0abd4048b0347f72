"""Does a conditional, depth-dependent space hurt the samplers, and does a flat one avoid it?

The LCBench surrogate (a model of real MLP learning curves on OpenML tasks, see
`_lcbench_problem.py`) is searched at full fidelity (every trial 52 epochs, one full-training
equivalent), 50 trials per run, by four Optuna samplers on three parameterisations of the same
MLP space:

  flat       LCBench's own: num_layers + one max_units (a funnel: the surrogate's network shrinks
             from max_units towards the output) + one max_dropout. No conditional parameter.
  per_layer  num_layers, then one width units_i and one dropout_i per layer (i < num_layers):
             the needless conditionality a per-layer space brings. The surrogate gets
             max_units = max(units_i) and max_dropout = max(dropout_i).
  switches   the cocktail form: use_dropout -> max_dropout (off: 0) and use_weight_decay ->
             weight_decay (off: 1e-5, the surrogate's minimum), each strength conditional on its
             switch; num_layers and max_units as in flat.

All three share batch_size, learning_rate and momentum with LCBench's ranges.

Samplers, each with 10 random start-up trials:
  tpe_group  TPESampler(multivariate=True, group=True): nntune's tpe
  tpe_mv     TPESampler(): since Optuna 5.0 the default is multivariate (without group)
  tpe_ind    TPESampler(multivariate=False): independent TPE, the default before 5.0
  gp         GPSampler()

Reported: capped regret DATA_MAX - min(best, DATA_MAX) after 10, 25 and 50 equivalents (mean over
tasks x seeds), the mean rank of the sampler x parameterisation pairs on each (task, seed)
where all of them ran, and the share of runs whose uncapped best lies above DATA_MAX (the
surrogate's over-predicted corners). Paired differences answer the two questions directly.

Run from the benchmarks directory with the project's environment:

    ../.venv/bin/python conditional_spaces.py                          # 5 tasks x 5 seeds (GP: 2)
    ../.venv/bin/python conditional_spaces.py --tasks 10 --gp-seeds 0  # TPE only, all 10 tasks (~4 min)
    ../.venv/bin/python conditional_spaces.py --tasks 2 --seeds 2 --gp-seeds 1   # smoke test
    ../.venv/bin/python conditional_spaces.py --load runs.json         # tables of a run saved with --out
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import warnings
from collections.abc import Callable

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402
import optuna  # noqa: E402
from _lcbench_problem import DATA_MAX, DEV_TASKS, MAX_EPOCH, SPACE, Problem  # noqa: E402
from scipy import stats  # noqa: E402

CHECKPOINTS = (10, 25, 50)
BUDGET = 50
Suggest = Callable[[optuna.Trial], dict]


def _num(trial: optuna.Trial, name: str, alias: str | None = None) -> float:
    """One LCBench parameter with its own range, optionally under another name."""
    spec = SPACE[name]
    suggest = trial.suggest_int if spec["type"] == "int" else trial.suggest_float
    return suggest(alias or name, spec["low"], spec["high"], log=spec["log"])


def _common(trial: optuna.Trial) -> dict:
    return {name: _num(trial, name) for name in ("batch_size", "learning_rate", "momentum")}


def flat(trial: optuna.Trial) -> dict:
    return {**_common(trial), **{n: _num(trial, n) for n in ("weight_decay", "num_layers", "max_units",
                                                             "max_dropout")}}


def per_layer(trial: optuna.Trial) -> dict:
    config = {**_common(trial), "weight_decay": _num(trial, "weight_decay"),
              "num_layers": _num(trial, "num_layers")}
    layers = range(int(config["num_layers"]))
    config["max_units"] = max(_num(trial, "max_units", f"units_{i}") for i in layers)
    config["max_dropout"] = max(_num(trial, "max_dropout", f"dropout_{i}") for i in layers)
    return config


def switches(trial: optuna.Trial) -> dict:
    config = {**_common(trial), "num_layers": _num(trial, "num_layers"), "max_units": _num(trial, "max_units")}
    use_dropout = trial.suggest_categorical("use_dropout", [False, True])
    config["max_dropout"] = _num(trial, "max_dropout") if use_dropout else 0.0
    use_weight_decay = trial.suggest_categorical("use_weight_decay", [False, True])
    config["weight_decay"] = _num(trial, "weight_decay") if use_weight_decay else SPACE["weight_decay"]["low"]
    return config


PARAMETERISATIONS: dict[str, Suggest] = {"flat": flat, "per_layer": per_layer, "switches": switches}
SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe_group": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True),
    "tpe_mv": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "tpe_ind": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=False),
    "gp": lambda seed: optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False),
}


def run(task: str, sampler: str, space: str, seed: int) -> dict:
    """One search of BUDGET full trainings; regret at each checkpoint."""
    problem = Problem(task, BUDGET)
    study = optuna.create_study(direction="maximize", sampler=SAMPLERS[sampler](seed))
    started = time.perf_counter()
    for _ in range(BUDGET):
        trial = study.ask()
        study.tell(trial, problem.train(PARAMETERISATIONS[space](trial), MAX_EPOCH))
    return {"task": task, "sampler": sampler, "space": space, "seed": seed,
            "seconds": time.perf_counter() - started,
            "regret": {eq: DATA_MAX[task] - problem.best_at(eq) for eq in CHECKPOINTS},
            "above_cap": problem.best_at(BUDGET, capped=False) > DATA_MAX[task]}


def mean_ranks(rows: list[dict], eq: int) -> dict[tuple[str, str], float]:
    """Mean rank (1 = lowest regret, ties shared) of each pair over the (task, seed) cells where
    every pair ran."""
    pairs = sorted({(r["sampler"], r["space"]) for r in rows})
    cells: dict[tuple[str, int], dict] = {}
    for r in rows:
        cells.setdefault((r["task"], r["seed"]), {})[(r["sampler"], r["space"])] = r["regret"][eq]
    full = [c for c in cells.values() if len(c) == len(pairs)]
    ranks = np.array([stats.rankdata([c[p] for p in pairs]) for c in full])
    return {p: float(ranks[:, i].mean()) for i, p in enumerate(pairs)} if len(full) else {}


def paired(rows: list[dict], a: tuple[str, str], b: tuple[str, str], eq: int) -> np.ndarray:
    """Regret of a minus b on each (task, seed) cell both ran."""
    index = {(r["task"], r["seed"], r["sampler"], r["space"]): r["regret"][eq] for r in rows}
    return np.array([index[(t, s, *a)] - index[(t, s, *b)] for (t, s, *p) in index
                     if tuple(p) == a and (t, s, *b) in index])


def summary(diffs: np.ndarray) -> str:
    """Mean with a 95% t half-width: one outlying task can carry a mean, so the table also
    counts the cells each side wins."""
    if len(diffs) < 2:
        return "n/a"
    half = stats.t.ppf(0.975, len(diffs) - 1) * diffs.std(ddof=1) / math.sqrt(len(diffs))
    return f"{diffs.mean():+.4f} ± {half:.4f}"


def table(rows: list[dict]) -> str:
    ranks = {eq: mean_ranks(rows, eq) for eq in (25, 50)}
    lines = ["| sampler | space | runs | regret@10 | regret@25 | regret@50 | rank@25 | rank@50 | best > cap | s/run |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for sampler in SAMPLERS:
        for space in PARAMETERISATIONS:
            mine = [r for r in rows if r["sampler"] == sampler and r["space"] == space]
            if not mine:
                continue
            regret = [np.mean([r["regret"][eq] for r in mine]) for eq in CHECKPOINTS]
            rank = [ranks[eq].get((sampler, space), math.nan) for eq in (25, 50)]
            lines.append(f"| {sampler} | {space} | {len(mine)} | " + " | ".join(f"{x:.4f}" for x in regret)
                         + " | " + " | ".join(f"{x:.2f}" for x in rank)
                         + f" | {np.mean([r['above_cap'] for r in mine]):.0%}"
                         + f" | {np.mean([r['seconds'] for r in mine]):.2f} |")
    return "\n".join(lines)


def differences(rows: list[dict]) -> str:
    lines = ["| comparison (regret of A minus B; < 0: A better) | pairs | @25 | @50 | A better / worse @50 |",
             "|---|---:|---:|---:|---:|"]
    comparisons = [((s, p), ("tpe_ind", p)) for p in PARAMETERISATIONS for s in ("tpe_group", "tpe_mv")]
    comparisons += [((s, p), (s, "flat")) for s in SAMPLERS for p in ("per_layer", "switches")]
    for a, b in comparisons:
        at25, at50 = paired(rows, a, b, 25), paired(rows, a, b, 50)
        if len(at50):
            lines.append(f"| {a[0]}/{a[1]} - {b[0]}/{b[1]} | {len(at50)} | {summary(at25)} | {summary(at50)} | "
                         f"{(at50 < 0).sum()} / {(at50 > 0).sum()} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5, help="how many DEV_TASKS (every other one, from the first)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per task for the TPE samplers")
    parser.add_argument("--gp-seeds", type=int, default=2, help="seeds per task for GPSampler (about 25 s a run)")
    parser.add_argument("--out", help="write every run as JSON here")
    parser.add_argument("--load", help="print the tables of runs saved with --out, without running")
    args = parser.parse_args()
    if args.load:
        with open(args.load) as f:
            rows = [{**r, "regret": {int(k): v for k, v in r["regret"].items()}} for r in json.load(f)]
        print(table(rows), differences(rows), sep="\n\n")
        return
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    # Every other development task: a fixed rule that spreads the choice over easy and hard tasks.
    tasks = (DEV_TASKS[::2] + DEV_TASKS[1::2])[:args.tasks]
    started = time.perf_counter()
    rows = []
    for task in tasks:
        for sampler in SAMPLERS:
            for seed in range(args.gp_seeds if sampler == "gp" else args.seeds):
                for space in PARAMETERISATIONS:
                    rows.append(run(task, sampler, space, seed))
        print(f"task {task} done ({time.perf_counter() - started:.0f} s)", flush=True)
    print(f"\nLCBench surrogate, tasks {', '.join(tasks)}; {args.seeds} seeds (gp: {args.gp_seeds}); "
          f"{BUDGET} trials of {MAX_EPOCH} epochs; capped regret, lower is better\n")
    print(table(rows))
    print()
    print(differences(rows))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
