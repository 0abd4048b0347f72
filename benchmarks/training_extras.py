"""Do curriculum learning and autoencoder pretraining help a small MLP on tables? At equal budget.

Every arm trains the same network (2 hidden layers of 128 ReLU units), with the same recipe (Adam,
lr 1e-3, batch 64, at most 60 epochs, early stopping on validation accuracy with patience 10,
best weights restored), on the same rows; only the technique under test changes. A seed fixes the
train/validation/test split and the initial weights, so each seed gives one paired comparison.
Everything is nntune's own code: `load_tabular`, `split_train_test`, `make_folds`, `encode_split`
(the preprocessing is fitted on the training rows only), `build_model("mlp", ...)`, `make_head`,
`prepare_fit` (which runs the pretraining and builds the curriculum), `fit`, `score_all`.

Curriculum (all labels):
  plain       no curriculum
  easy_first  each epoch uses the easiest share of the rows; the share grows linearly from 0.25 in
              epoch 1 to every row from epoch 30 (pacing_full 0.5 of max_epochs 60) on. Difficulty:
              the loss of two small reference networks, each trained on the other half (nntune's
              `difficulty_from_loss`, computed once per seed and shared with hard_first, as the
              search objective caches it)
  hard_first  the same, hardest rows first (an anti-curriculum)
  random      the same pacing, a fixed random order (the control: is it the order or the pacing?)

Autoencoder pretraining, with all labels and with 10% of them:
  plain       no pretraining
  pretrain    20 epochs of autoencoder pretraining of the hidden layers (mse), then the same fit
  denoise     the same with Gaussian input noise of std 0.1 (a denoising autoencoder)
  With 10% labels, the labelled rows are a stratified 10% of the non-test rows (80% of them
  train, 20% validate, as with all labels); the pretraining arms also see every other non-test
  row without its label, as `--unlabeled FILE` would supply them. The test rows are the same as
  with all labels. wine is left out here: 10% of it is 12 training and 3 validation rows.

Reported per data set and arm: mean test accuracy with a 95% t-interval over the seeds, the
paired difference to plain (same seed: same split, same initial weights) with its 95% t-interval,
the verdict (helps / hurts when the interval excludes 0, else within noise), the mean best epoch,
optimizer steps actually taken and seconds per fit (pretraining and difficulty scoring included).

Run from the repository root (about 11 minutes on 2 busy vCPUs, one thread; tables in docs/training.md):

    .venv/bin/python benchmarks/training_extras.py
    .venv/bin/python benchmarks/training_extras.py --seeds 2 --datasets wine --max-epochs 5   # smoke test
    .venv/bin/python benchmarks/training_extras.py --out extras.json      # also keep every fit
    .venv/bin/python benchmarks/training_extras.py --load extras.json     # the tables again
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import time
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

from nntune.data import (  # noqa: E402
    TabularData,
    encode_split,
    load_tabular,
    make_folds,
    read_table,
    split_train_test,
    transform,
)
from nntune.models import ModelMeta, build_model  # noqa: E402
from nntune.training import (  # noqa: E402
    difficulty_from_loss,
    fit,
    get_metric,
    make_head,
    predict_outputs,
    prepare_fit,
    score_all,
    set_threads,
)

REPO = Path(__file__).resolve().parent.parent
TAXIS = REPO.parent / "shared" / "data" / "tabular" / "taxis.csv"
DATASETS = ("digits", "breast_cancer", "wine", "taxis")
LOW_LABEL_DATASETS = ("digits", "breast_cancer", "taxis")

TEST_SIZE, VAL_SIZE, LABELLED_SHARE = 0.2, 0.2, 0.1
NETWORK = {"n_layers": 2, "units": 128, "shape": "brick", "activation": "relu", "init": "default",
           "dropout": 0.0, "norm": "none", "residual": False}
RECIPE = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "batch_size": 64, "schedule": "constant",
          "max_epochs": 60, "patience": 10, "restore_best": True}
PACING = {"pacing": "linear", "pacing_start": 0.25, "pacing_full": 0.5}
CURRICULUM_ARMS = {
    "plain": {},
    "easy_first": {"curriculum": "easy_first", **PACING},
    "hard_first": {"curriculum": "hard_first", **PACING},
    "random": {"curriculum": "random", **PACING},
}
PRETRAIN_ARMS = {
    "plain": {},
    "pretrain": {"pretrain_epochs": 20, "pretrain_loss": "mse"},
    "denoise": {"pretrain_epochs": 20, "pretrain_loss": "mse", "pretrain_noise": 0.1},
}


def load(name: str) -> TabularData:
    """One of scikit-learn's tables, or the taxi trips (`payment`: cash or credit card)."""
    if name == "taxis":
        table = load_tabular(read_table(TAXIS), "payment")
        table.name = "taxis"
        return table
    return load_tabular(dataset=name)


def steps_taken(rows_per_epoch: list[int], batch_size: int) -> int:
    """Optimizer steps over the epochs run, as `fit` counts them (a last batch of one row is dropped)."""
    total = 0
    for rows in rows_per_epoch:
        steps = math.ceil(rows / batch_size)
        total += steps - 1 if rows % batch_size == 1 and rows > 1 else steps
    return total


def train_arm(table: TabularData, split, X_test: np.ndarray, y_test: np.ndarray, recipe: dict, seed: int,
              difficulty: np.ndarray | None = None) -> dict:
    """Build the network from `seed`, apply the arm's steps (`prepare_fit`), fit, score the test rows."""
    epochs = int(recipe["max_epochs"])
    started = time.monotonic()
    head = make_head(table.task, split.y_train, len(table.classes), recipe)
    torch.manual_seed(seed)
    module = build_model("mlp", NETWORK, ModelMeta(split.n_features, head.output_dim, table.task))
    extras = prepare_fit(module, recipe, split.X_train, split.y_train, task=table.task,
                         n_classes=len(table.classes), epochs=epochs, seed=seed,
                         X_unlabeled=split.X_unlabeled if recipe.get("pretrain_epochs") else None,
                         difficulty=difficulty)
    result = fit(module, head, split.X_train, split.y_train, recipe, X_val=split.X_eval, y_val=split.y_eval,
                 metric=get_metric("accuracy", table.task), epochs=epochs, seed=seed, **extras)
    scores = score_all(table.task, y_test, head.scores(predict_outputs(module, torch.from_numpy(X_test))))
    schedule = extras.get("row_schedule")
    n = len(split.y_train)
    rows = [n if schedule is None or schedule.rows(e) is None else len(schedule.rows(e))
            for e in range(1, result.epochs_run + 1)]
    return {"accuracy": scores["accuracy"], "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
            "steps": steps_taken(rows, int(recipe["batch_size"])), "seconds": time.monotonic() - started}


def run_seed(table: TabularData, seed: int, low_label: bool, recipe: dict) -> list[dict]:
    """Every arm on one seed's split of one table; `recipe` is shared by all of them."""
    out = []
    pool, test = split_train_test(table, TEST_SIZE, seed)
    y_test = table.y[test]

    # All labels: train / validation split of the non-test rows, as nntune's search makes it.
    train, val = make_folds(table, pool, None, VAL_SIZE, seed)[0]
    split = encode_split(table, train, val)
    X_test = transform(split.preprocessor, table.features, test)
    started = time.monotonic()
    difficulty = difficulty_from_loss(split.X_train, split.y_train, table.task, len(table.classes), recipe,
                                      seed=seed)
    scoring = time.monotonic() - started
    base = {"dataset": table.name, "seed": seed, "n_train": len(train), "n_val": len(val), "n_test": len(test),
            "n_features": split.n_features}
    for arm, extra in CURRICULUM_ARMS.items():
        ordered = arm in ("easy_first", "hard_first")
        record = train_arm(table, split, X_test, y_test, {**recipe, **extra}, seed, difficulty if ordered else None)
        if ordered:
            record["seconds"] += scoring  # the reference networks are part of the technique's cost
        out.append({**base, "study": "curriculum", "arm": arm, **record})
    for arm, extra in PRETRAIN_ARMS.items():
        if arm == "plain":  # the very same fit as the curriculum study's plain arm
            out.append({**out[0], "study": "pretrain_full"})
            continue
        out.append({**base, "study": "pretrain_full", "arm": arm, **train_arm(table, split, X_test, y_test, {**recipe, **extra}, seed)})

    if low_label:
        # 10% of the non-test rows keep their labels (stratified); they are split 80/20 into
        # train and validation. Every other non-test row is unlabelled data for pretraining.
        rest, labelled = make_folds(table, pool, None, LABELLED_SHARE, seed)[0]
        train, val = make_folds(table, labelled, None, VAL_SIZE, seed)[0]
        # The table's features are already conformed to its schema: what `attach_unlabeled`
        # stores for a raw frame of the same columns (as `--unlabeled FILE` gives it).
        few = dataclasses.replace(table, unlabeled=table.features.iloc[np.sort(np.concatenate([rest, val]))])
        split = encode_split(few, train, val)
        X_test = transform(split.preprocessor, table.features, test)
        base = {**base, "n_train": len(train), "n_val": len(val), "n_unlabeled": len(split.X_unlabeled),
                "n_features": split.n_features}
        for arm, extra in PRETRAIN_ARMS.items():
            out.append({**base, "study": "pretrain_low", "arm": arm,
                        **train_arm(few, split, X_test, y_test, {**recipe, **extra}, seed)})
    return out


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------

def interval(values: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()), float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean()), float(half)


def verdict(mean: float, half: float) -> str:
    if not math.isfinite(half):
        return "n/a"
    if mean - half > 0:
        return "**helps**"
    if mean + half < 0:
        return "**hurts**"
    return "within noise"


def by_seed(records: list[dict], study: str, dataset: str, arm: str) -> dict[int, dict]:
    return {r["seed"]: r for r in records if r["study"] == study and r["dataset"] == dataset and r["arm"] == arm}


def table(records: list[dict], study: str, arms: list[str], reference: str = "plain") -> str:
    lines = ["| data set | arm | test accuracy % (95% CI) | Δ vs plain, pp (95% CI) | verdict | best epoch "
             "| steps | s / fit |",
             "|---|---|---:|---:|---|---:|---:|---:|"]
    datasets = list(dict.fromkeys(r["dataset"] for r in records if r["study"] == study))
    for dataset in datasets:
        plain = by_seed(records, study, dataset, reference)
        for arm in arms:
            runs = by_seed(records, study, dataset, arm)
            if not runs:
                continue
            seeds = sorted(runs)
            acc = np.array([runs[s]["accuracy"] for s in seeds]) * 100
            mean, half = interval(acc)
            cell = f"{mean:.2f} ± {half:.2f}"
            if arm == reference:
                diff_cell, word = "—", ""
            else:
                diff = np.array([runs[s]["accuracy"] - plain[s]["accuracy"] for s in seeds if s in plain]) * 100
                d, h = interval(diff)
                diff_cell, word = f"{d:+.2f} [{d - h:+.2f}, {d + h:+.2f}]", verdict(d, h)
            best = np.mean([runs[s]["best_epoch"] for s in seeds])
            steps = np.mean([runs[s]["steps"] for s in seeds])
            seconds = np.mean([runs[s]["seconds"] for s in seeds])
            lines.append(f"| {dataset} | {arm} | {cell} | {diff_cell} | {word} | {best:.1f} | {steps:.0f} "
                         f"| {seconds:.2f} |")
    return "\n".join(lines)


def ordering_table(records: list[dict]) -> str:
    """easy_first and hard_first against the random order with the same pacing: the order's own effect."""
    lines = ["| data set | easy_first − random, pp (95% CI) | verdict | hard_first − random, pp (95% CI) "
             "| verdict |", "|---|---:|---|---:|---|"]
    for dataset in dict.fromkeys(r["dataset"] for r in records if r["study"] == "curriculum"):
        control = by_seed(records, "curriculum", dataset, "random")
        cells = []
        for arm in ("easy_first", "hard_first"):
            runs = by_seed(records, "curriculum", dataset, arm)
            diff = np.array([runs[s]["accuracy"] - control[s]["accuracy"] for s in sorted(runs) if s in control]) * 100
            d, h = interval(diff)
            cells += [f"{d:+.2f} [{d - h:+.2f}, {d + h:+.2f}]", verdict(d, h)]
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sizes_table(records: list[dict]) -> str:
    lines = ["| data set | setting | encoded features | train rows | validation rows | unlabelled rows | test rows |",
             "|---|---|---:|---:|---:|---:|---:|"]
    seen = set()
    for r in records:
        key = (r["dataset"], r["study"] == "pretrain_low")
        if key in seen or r["arm"] != "plain" or r["study"] == "pretrain_full":
            continue
        seen.add(key)
        lines.append(f"| {r['dataset']} | {'10% labels' if key[1] else 'all labels'} | {r['n_features']} "
                     f"| {r['n_train']} | {r['n_val']} | {r.get('n_unlabeled', 0) if key[1] else 0} | {r['n_test']} |")
    return "\n".join(lines)


def report(records: list[dict], meta: dict) -> str:
    parts = [
        f"{meta['seeds']} seeds; network {NETWORK['n_layers']} x {NETWORK['units']} ReLU; Adam lr "
        f"{RECIPE['lr']}, batch {RECIPE['batch_size']}, max {meta['max_epochs']} epochs, patience "
        f"{RECIPE['patience']}, best weights restored; {meta['threads']} torch thread(s); wall time "
        f"{meta['wall_seconds'] / 60:.1f} min on {meta['machine']}.",
        "", "Rows per split (seed 0):", "", sizes_table(records),
        "", "### Curriculum (linear pacing, start 0.25, full 0.5)", "",
        table(records, "curriculum", list(CURRICULUM_ARMS)),
        "", "Order effect at the same pacing (paired, against the random order):", "", ordering_table(records),
        "", "### Autoencoder pretraining, all labels", "",
        table(records, "pretrain_full", list(PRETRAIN_ARMS)),
    ]
    if any(r["study"] == "pretrain_low" for r in records):
        parts += ["", "### Autoencoder pretraining, 10% of the labels (pretrained on every non-test row)", "",
                  table(records, "pretrain_low", list(PRETRAIN_ARMS))]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated: {', '.join(DATASETS)}")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (each: a split and initial weights)")
    parser.add_argument("--max-epochs", type=int, default=RECIPE["max_epochs"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="write every fit's record to this JSON file")
    parser.add_argument("--load", help="print the tables of a JSON file written with --out, run nothing")
    args = parser.parse_args()
    if args.load:
        saved = json.loads(Path(args.load).read_text())
        print(report(saved["records"], saved["meta"]))
        return

    set_threads(args.threads)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        parser.error(f"unknown data set(s) {', '.join(unknown)}; accepted: {', '.join(DATASETS)}")
    started = time.monotonic()
    records: list[dict] = []
    for name in names:
        data = load(name)
        for seed in range(args.seeds):
            t0 = time.monotonic()
            records += run_seed(data, seed, name in LOW_LABEL_DATASETS, {**RECIPE, "max_epochs": args.max_epochs})
            print(f"# {name} seed {seed}: {time.monotonic() - t0:.1f}s", flush=True)
        meta = {"seeds": args.seeds, "max_epochs": args.max_epochs, "threads": args.threads,
                "wall_seconds": time.monotonic() - started, "torch": torch.__version__,
                "machine": f"{os.cpu_count()} vCPU, no GPU ({platform.machine()}, {platform.system()})"}
        if args.out:  # after every data set, so an interrupted run keeps what it finished
            Path(args.out).write_text(json.dumps({"meta": meta, "records": records}, indent=1))
    print()
    print(report(records, meta))


if __name__ == "__main__":
    main()
