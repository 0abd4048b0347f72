"""The mlp family's first recipe alone on every development table: one trial (trials=1), with
values fixed over it, on benchmarks/tabular.py's tables and test splits; the test score of the
model nntune delivers. Cheaper than a minute of search per table, so a change to the tuned
default can be measured on every table and several seeds before it is run under the search.

    .venv/bin/python benchmarks/first_recipe.py base '{}' --seeds 0,1
    .venv/bin/python benchmarks/first_recipe.py ls '{"label_smoothing": 0.1}' --seeds 0,1
    .venv/bin/python benchmarks/first_recipe.py --compare base ls

Each variant's records go to benchmarks/results/first_recipe/<variant>.jsonl (a rerun appends);
`--compare A B` prints the paired differences B minus A, per (table, seed) and over them with a
95% t-interval, classification tables apart (label smoothing leaves regression unchanged).
Values for classification only (label_smoothing) are left out on regression tables.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tabular import DATASETS, TEST_SIZE, load_frame, shared_split, test_score  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "first_recipe"
CLASSIFICATION_ONLY = ("label_smoothing",)


def run(variant: str, fixed: dict, seeds: list[int], datasets: list[str]) -> None:
    import torch

    import nntune

    torch.set_num_threads(1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"{variant}.jsonl", "a") as out:
        for seed in seeds:
            for name in datasets:
                frame, target = load_frame(name)
                table, _, test_rows = shared_split(frame, target, seed)
                values = {k: v for k, v in fixed.items()
                          if not (k in CLASSIFICATION_ONLY and table.task == "regression")}
                started = time.monotonic()
                with tempfile.TemporaryDirectory(prefix="nntune-recipe-") as tmp:
                    result = nntune.tune(frame, target=target, trials=1, threads=1, seed=seed, test_size=TEST_SIZE,
                                         out=Path(tmp) / "run", study="recipe", report=False, space=values or None)
                    predicted = result.model.predict(frame.iloc[test_rows].drop(columns=[target]))
                record = {"variant": variant, "dataset": name, "task": table.task, "seed": seed,
                          "fixed": values, "score": test_score(table.task, frame[target].to_numpy()[test_rows],
                                                               predicted),
                          "validation": result.best_value, "seconds": round(time.monotonic() - started, 1),
                          "params": result.best_params}
                print(json.dumps(record), flush=True)
                out.write(json.dumps(record) + "\n")
                out.flush()


def compare(a: str, b: str) -> None:
    from scipy import stats

    def load(variant):
        return {(r["dataset"], r["seed"]): r for r in map(json.loads, open(RESULTS / f"{variant}.jsonl"))}

    first, second = load(a), load(b)
    keys = [k for k in first if k in second]
    for k in keys:
        print(f"{k[0]:26s} seed {k[1]}  {first[k]['score']:.4f}  {second[k]['score']:.4f}  "
              f"{second[k]['score'] - first[k]['score']:+.4f}")
    for label, chosen in (("all", keys), ("classification", [k for k in keys if first[k]["task"] != "regression"])):
        diffs = [second[k]["score"] - first[k]["score"] for k in chosen]
        if len(diffs) < 2:
            continue
        mean, half = statistics.mean(diffs), stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5
        print(f"{label}: {len(diffs)} pairs, {b} minus {a} {mean:+.4f} [{mean - half:+.4f}, {mean + half:+.4f}], "
              f"better {sum(d > 1e-9 for d in diffs)}, worse {sum(d < -1e-9 for d in diffs)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variant", nargs="?", help="a name for the records")
    parser.add_argument("fixed", nargs="?", default="{}", help="values fixed over the first recipe, as JSON")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"))
    args = parser.parse_args(argv)
    if args.compare:
        compare(*args.compare)
        return 0
    if not args.variant:
        parser.error("give a variant name (or --compare A B)")
    run(args.variant, json.loads(args.fixed), [int(s) for s in args.seeds.split(",")], args.datasets.split(","))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
