"""What a user gets from one minute of tuning on a table: nntune against three references.

Every method sees the same stratified 80/20 split and the same encoded features (nntune's own
`load_tabular`, `split_train_test` and `encode_split`), the same wall-clock budget and one thread.
Each (data set, method) pair runs in its own Python process, one at a time, so thread settings,
caches and memory never carry over from one method to the next.

Methods:
  nntune        nntune.tune(frame, target, timeout=budget, threads=1) on the whole table with
                the benchmark's seed and test_size, so it holds out the same test rows; its model
                is scored on them through `result.model.predict`.
  optuna_torch  the recipe of Optuna's PyTorch example: an MLP whose depth, widths, dropouts,
                optimizer and learning rate are suggested per trial, trained with a DataLoader
                loop, validation score reported every epoch, MedianPruner, study.optimize with
                timeout=budget; the best trial is then retrained on all training rows.
  sklearn_mlp   scikit-learn MLPClassifier / MLPRegressor, random search (ParameterSampler +
                3-fold cross_val_score) stopped when the next candidate would overrun the
                budget; the best candidate is then refitted on all training rows.
  hgb           HistGradientBoosting with default settings: an untuned, non-neural reference.

Run from the repository root:

    .venv/bin/python benchmarks/tabular.py --seconds 5 --datasets iris,diabetes   # smoke test
    .venv/bin/python benchmarks/tabular.py --seconds 60 --out benchmarks/results/tabular.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# One thread for every numeric library, set before any of them is imported (the parent also
# passes these to each child process).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
for _name in THREAD_VARS:
    os.environ.setdefault(_name, "1")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data" / "tabular"

SEED = 0
TEST_SIZE = 0.2
BUILTINS = ("digits", "breast_cancer", "wine", "iris", "diabetes")
CSV_TABLES = {"tips": ("tips.csv", "tip"), "taxis": ("taxis.csv", "payment")}
DATASETS = (*BUILTINS, "tips", "taxis", "synthetic")
METHODS = ("nntune", "optuna_torch", "sklearn_mlp", "hgb")
NEURAL = ("nntune", "optuna_torch", "sklearn_mlp")
TITLES = {"nntune": "nntune", "optuna_torch": "Optuna example (PyTorch)",
          "sklearn_mlp": "sklearn MLP search", "hgb": "HGB (untuned)"}

# The Optuna-example baseline trains every trial for a fixed number of epochs at a fixed batch
# size, as the example does (it uses 10 epochs of batch 128 on image data; tables are far
# smaller, so more epochs at a smaller batch give each trial a reasonable number of updates).
EXAMPLE_EPOCHS = 30
EXAMPLE_BATCH = 64


# --------------------------------------------------------------------------------------------
# Data: the raw frame every method starts from, and the one split they all share.
# --------------------------------------------------------------------------------------------

def load_frame(name: str):
    """The raw table and its target column. Rows without a target are dropped here, so row
    numbers mean the same thing to nntune (which would drop them itself) and to the others."""
    import numpy as np
    import pandas as pd

    if name in BUILTINS:
        from sklearn import datasets

        frame, target = getattr(datasets, f"load_{name}")(as_frame=True).frame, "target"
    elif name in CSV_TABLES:
        file, target = CSV_TABLES[name]
        frame = pd.read_csv(SHARED_DATA / file)
    elif name == "synthetic":
        from sklearn.datasets import make_classification

        X, y = make_classification(n_samples=20_000, n_features=20, n_informative=10,
                                   n_redundant=4, n_classes=2, random_state=SEED)
        frame = pd.DataFrame(X.astype(np.float32), columns=[f"x{i}" for i in range(20)])
        frame["target"] = y
        target = "target"
    else:
        raise SystemExit(f"unknown data set '{name}'; known: {', '.join(DATASETS)}")
    frame = frame.loc[frame[target].notna()].reset_index(drop=True)
    return frame, target


def shared_split(frame, target: str):
    """nntune's table, its train/test rows and the encoded matrices (preprocessing fitted on
    the training rows only), exactly as nntune.tune computes them for this seed."""
    from nntune.data import load_tabular, split_train_test

    table = load_tabular(frame, target)
    train_rows, test_rows = split_train_test(table, TEST_SIZE, SEED)
    return table, train_rows, test_rows


def fingerprint(rows) -> str:
    import numpy as np

    return hashlib.sha256(np.asarray(rows, dtype=np.int64).tobytes()).hexdigest()[:16]


def test_score(task: str, y_true, y_pred) -> float:
    from sklearn.metrics import accuracy_score, r2_score

    if task == "regression":
        return float(r2_score(y_true, y_pred))
    return float(accuracy_score(y_true, y_pred))


# --------------------------------------------------------------------------------------------
# The methods. Each returns (test score, details) and runs inside its own worker process.
# --------------------------------------------------------------------------------------------

def run_nntune(frame, target, table, train_rows, test_rows, seconds):
    import tempfile

    import nntune

    with tempfile.TemporaryDirectory(prefix="nntune-bench-") as tmp:
        result = nntune.tune(frame, target=target, timeout=seconds, threads=1, seed=SEED,
                             test_size=TEST_SIZE, out=Path(tmp) / "run", study="bench")
        test_frame = frame.iloc[test_rows].drop(columns=[target])
        predicted = result.model.predict(test_frame)
    truth = frame[target].to_numpy()[test_rows]
    score = test_score(table.task, truth, predicted)
    # nntune scored its own held-out rows; equal scores show it held out the same rows.
    own = result.test_scores["r2" if table.task == "regression" else "accuracy"]
    if abs(own - score) > 1e-6:
        raise RuntimeError(f"nntune's own test score {own} differs from the benchmark's {score} "
                           "on the shared test rows: the splits do not match")
    return score, {"trials": result.n_trials, "best_params": result.best_params,
                   "nntune_test_scores": result.test_scores, "nntune_seconds": result.seconds}


def run_optuna_torch(split, task, n_classes, seconds):
    """The objective as Optuna's PyTorch example builds it, on the encoded table."""
    import numpy as np
    import optuna
    import torch
    from sklearn.model_selection import train_test_split
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.manual_seed(SEED)
    regression = task == "regression"
    X_train, y_train = split.X_train, split.y_train
    X_test, y_test = split.X_eval, split.y_eval
    n_features = X_train.shape[1]
    out_dim = 1 if regression else n_classes

    fit_idx, val_idx = train_test_split(
        np.arange(len(y_train)), test_size=0.2, random_state=SEED,
        stratify=None if regression else y_train)

    def targets(y, mean, std):
        if regression:
            return torch.from_numpy(((y - mean) / std).astype(np.float32)).reshape(-1, 1)
        return torch.from_numpy(y.astype(np.int64))

    def define_model(trial):
        layers, width = [], n_features
        for i in range(trial.suggest_int("n_layers", 1, 3)):
            units = trial.suggest_int(f"n_units_l{i}", 4, 128)
            layers += [nn.Linear(width, units), nn.ReLU(),
                       nn.Dropout(trial.suggest_float(f"dropout_l{i}", 0.2, 0.5))]
            width = units
        layers.append(nn.Linear(width, out_dim))
        return nn.Sequential(*layers)

    def define_optimizer(trial, model):
        name = trial.suggest_categorical("optimizer", ["Adam", "RMSprop", "SGD"])
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        return getattr(torch.optim, name)(model.parameters(), lr=lr)

    def score(model, X, y_std):
        model.eval()
        with torch.no_grad():
            out = model(torch.from_numpy(X))
        if regression:
            y = y_std.reshape(-1).numpy()
            pred = out.reshape(-1).numpy()
            denom = float(((y - y.mean()) ** 2).sum()) or 1.0
            return 1.0 - float(((y - pred) ** 2).sum()) / denom
        return float((out.argmax(dim=1) == y_std).float().mean())

    loss_fn = nn.MSELoss() if regression else nn.CrossEntropyLoss()

    def train(trial, rows, eval_X=None, eval_y=None):
        y_rows = y_train[rows]
        mean, std = (float(y_rows.mean()), float(y_rows.std()) or 1.0) if regression else (0, 1)
        model = define_model(trial)
        optimizer = define_optimizer(trial, model)
        loader = DataLoader(TensorDataset(torch.from_numpy(X_train[rows]),
                                          targets(y_rows, mean, std)),
                            batch_size=EXAMPLE_BATCH, shuffle=True)
        eval_t = targets(eval_y, mean, std) if eval_y is not None else None
        value = float("nan")
        for epoch in range(EXAMPLE_EPOCHS):
            model.train()
            for xb, yb in loader:
                optimizer.zero_grad()
                loss = loss_fn(model(xb), yb)
                loss.backward()
                optimizer.step()
            if eval_X is not None:
                value = score(model, eval_X, eval_t)
                trial.report(value, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        return model, mean, std, value

    def objective(trial):
        _, _, _, value = train(trial, fit_idx, X_train[val_idx], y_train[val_idx])
        return value

    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=SEED),
                                pruner=optuna.pruners.MedianPruner())
    started = time.monotonic()
    study.optimize(objective, timeout=seconds)
    search_seconds = time.monotonic() - started
    states = {s.name.lower(): sum(t.state == s for t in study.trials)
              for s in optuna.trial.TrialState if any(t.state == s for t in study.trials)}
    # Retrain the best configuration on every training row and score the test rows.
    torch.manual_seed(SEED)
    best = study.best_trial
    model, mean, std, _ = train(optuna.trial.FixedTrial(best.params), np.arange(len(y_train)))
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(X_test))
    predicted = out.reshape(-1).numpy() * std + mean if regression else out.argmax(1).numpy()
    return test_score(task, y_test, predicted), {
        "trials": states, "best_params": best.params, "best_value": best.value,
        "search_seconds": round(search_seconds, 2)}


def run_sklearn_mlp(split, task, seconds):
    """Random search over scikit-learn's MLP, 3-fold CV, stopped by the wall-clock budget."""
    import warnings

    import numpy as np
    from scipy.stats import loguniform
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import KFold, ParameterSampler, StratifiedKFold, cross_val_score
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.preprocessing import StandardScaler

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    regression = task == "regression"
    distributions = {
        "hidden_layer_sizes": [(32,), (64,), (128,), (256,), (64, 64), (128, 128), (256, 256),
                               (128, 64), (128, 128, 128)],
        "activation": ["relu", "tanh"],
        "alpha": loguniform(1e-6, 1e-1),
        "learning_rate_init": loguniform(1e-4, 1e-1),
        "batch_size": [32, 64, 128, 256],
    }

    def make(params):
        common = {"max_iter": 200, "early_stopping": True, "random_state": SEED, **params}
        if regression:  # targets standardized, as any practitioner would for an MLP
            return TransformedTargetRegressor(MLPRegressor(**common), transformer=StandardScaler())
        return MLPClassifier(**common)

    cv = (KFold(3, shuffle=True, random_state=SEED) if regression
          else StratifiedKFold(3, shuffle=True, random_state=SEED))
    scoring = "r2" if regression else "accuracy"
    started = time.monotonic()
    best_params, best_cv, costs = None, -np.inf, []
    for params in ParameterSampler(distributions, n_iter=100_000, random_state=SEED):
        elapsed = time.monotonic() - started
        if costs and elapsed + float(np.mean(costs)) > seconds:
            break
        t0 = time.monotonic()
        value = float(np.mean(cross_val_score(make(params), split.X_train, split.y_train,
                                              cv=cv, scoring=scoring, error_score=np.nan)))
        costs.append(time.monotonic() - t0)
        if np.isfinite(value) and value > best_cv:
            best_params, best_cv = params, value
    search_seconds = time.monotonic() - started
    if best_params is None:
        raise RuntimeError("no scikit-learn candidate finished")
    model = make(best_params).fit(split.X_train, split.y_train)
    return test_score(task, split.y_eval, model.predict(split.X_eval)), {
        "candidates": len(costs), "best_params": {k: str(v) for k, v in best_params.items()},
        "best_cv": best_cv, "search_seconds": round(search_seconds, 2)}


def run_hgb(split, task):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    model = cls(random_state=SEED).fit(split.X_train, split.y_train)
    return test_score(task, split.y_eval, model.predict(split.X_eval)), {}


def worker(method: str, dataset: str, seconds: float) -> dict:
    """Run one method on one data set in this process and return its record."""
    import torch

    import nntune

    torch.set_num_threads(1)
    frame, target = load_frame(dataset)
    table, train_rows, test_rows = shared_split(frame, target)
    started = time.monotonic()
    if method == "nntune":
        score, details = run_nntune(frame, target, table, train_rows, test_rows, seconds)
    else:
        from nntune.data import encode_split

        split = encode_split(table, train_rows, test_rows)
        if method == "optuna_torch":
            score, details = run_optuna_torch(split, table.task, len(table.classes), seconds)
        elif method == "sklearn_mlp":
            score, details = run_sklearn_mlp(split, table.task, seconds)
        elif method == "hgb":
            score, details = run_hgb(split, table.task)
        else:
            raise SystemExit(f"unknown method '{method}'; known: {', '.join(METHODS)}")
        details["encoded_features"] = int(split.n_features)
    return {
        "dataset": dataset, "method": method, "task": table.task, "rows": int(table.n_rows),
        "features": len(table.schema.columns),
        "metric": "r2" if table.task == "regression" else "accuracy", "score": score,
        "seconds": round(time.monotonic() - started, 2), "threads": torch.get_num_threads(),
        "train_rows": int(len(train_rows)), "test_rows": int(len(test_rows)),
        "test_fingerprint": fingerprint(test_rows), "details": details,
        "nntune_version": nntune.__version__, "nntune_file": nntune.__file__,
    }


# --------------------------------------------------------------------------------------------
# The driver: one child process per (data set, method), strictly one after another.
# --------------------------------------------------------------------------------------------

def run_child(method: str, dataset: str, seconds: float) -> dict:
    env = {**os.environ, **{name: "1" for name in THREAD_VARS}, "PYTHONHASHSEED": "0"}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", method,
               "--dataset", dataset, "--seconds", str(seconds)]
    started = time.monotonic()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO,
                          timeout=10 * seconds + 600)
    wall = round(time.monotonic() - started, 2)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            record = json.loads(line[len("RESULT "):])
            record["process_seconds"] = wall
            return record
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
    return {"dataset": dataset, "method": method, "score": None, "process_seconds": wall,
            "error": "\n".join(tail) or f"exit code {proc.returncode}"}


def ranks(values: dict[str, float]) -> dict[str, float]:
    """Rank 1 = best (highest); ties share the average rank."""
    ordered = sorted(values.items(), key=lambda kv: -kv[1])
    out: dict[str, float] = {}
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1][1] == ordered[i][1]:
            j += 1
        for k in range(i, j + 1):
            out[ordered[k][0]] = (i + j) / 2 + 1
        i = j + 1
    return out


def summarize(records: list[dict], datasets: list[str], methods: list[str]) -> str:
    by = {(r["dataset"], r["method"]): r for r in records}
    lines = ["| data set | task | rows | metric | "
             + " | ".join(TITLES[m] for m in methods) + " |",
             "|---|---|---:|---|" + "---:|" * len(methods)]
    rank_sums = {m: 0.0 for m in NEURAL if m in methods}
    ranked, ahead, compared = 0, 0, 0
    for d in datasets:
        rows = [by.get((d, m), {}) for m in methods]
        info = next((r for r in rows if r.get("rows")), {})
        cells = []
        for r in rows:
            cells.append("error" if r.get("error") else
                         f"{r['score']:.4f}" if r.get("score") is not None else "-")
        lines.append(f"| {d} | {info.get('task', '?')} | {info.get('rows', '?')} | "
                     f"{info.get('metric', '?')} | " + " | ".join(cells) + " |")
        neural = {m: by[(d, m)]["score"] for m in rank_sums
                  if by.get((d, m), {}).get("score") is not None}
        if rank_sums and len(neural) == len(rank_sums):
            for m, r in ranks(neural).items():
                rank_sums[m] += r
            ranked += 1
        nn_score = by.get((d, "nntune"), {}).get("score")
        hgb_score = by.get((d, "hgb"), {}).get("score")
        if nn_score is not None and hgb_score is not None:
            compared += 1
            ahead += nn_score > hgb_score
    lines.append("")
    if ranked and len(rank_sums) > 1:
        lines.append(f"Mean rank among the neural tuners over {ranked} data set(s) "
                     "(1 = best): " + ", ".join(f"{TITLES[m]} {s / ranked:.2f}"
                                                for m, s in rank_sums.items()))
    if compared:
        lines.append(f"nntune ahead of HGB on {ahead} of {compared} data sets.")
    lines += ["", "Trials / candidates and wall-clock seconds (whole method, after loading):", "",
              "| data set | " + " | ".join(TITLES[m] for m in methods) + " |",
              "|---|" + "---|" * len(methods)]
    for d in datasets:
        cells = []
        for m in methods:
            r = by.get((d, m), {})
            if r.get("score") is None:
                cells.append("-")
                continue
            det = r.get("details", {})
            if m == "nntune" or m == "optuna_torch":
                t = det.get("trials", {})
                count = f"{t.get('complete', 0)} done, {t.get('pruned', 0)} pruned"
                if t.get("fail"):
                    count += f", {t['fail']} failed"
            elif m == "sklearn_mlp":
                count = f"{det.get('candidates', 0)} candidates"
            else:
                count = "1 fit"
            cells.append(f"{count}; {r['seconds']:.1f} s")
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def check_splits(records: list[dict]) -> list[str]:
    problems = []
    for d in sorted({r["dataset"] for r in records}):
        prints = {r["method"]: r.get("test_fingerprint") for r in records
                  if r["dataset"] == d and r.get("test_fingerprint")}
        if len(set(prints.values())) > 1:
            problems.append(f"{d}: test rows differ between methods: {prints}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="wall-clock budget per method and data set (default 60)")
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help=f"comma-separated subset of: {','.join(DATASETS)}")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated subset of: {','.join(METHODS)}")
    parser.add_argument("--out", type=Path, help="write every record to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        record = worker(args.worker, args.dataset, args.seconds)
        print("RESULT " + json.dumps(record, default=str), flush=True)
        return 0

    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for name, known, given in (("data set", DATASETS, datasets), ("method", METHODS, methods)):
        unknown = [g for g in given if g not in known]
        if unknown:
            parser.error(f"unknown {name}(s) {', '.join(unknown)}; known: {', '.join(known)}")

    records: list[dict] = []
    for d in datasets:
        for m in methods:
            record = run_child(m, d, args.seconds)
            records.append(record)
            shown = (f"{record['metric']}={record['score']:.4f}" if record.get("score") is not None
                     else "ERROR " + record.get("error", "").splitlines()[-1])
            print(f"[{d} / {m}] {shown} ({record['process_seconds']:.1f} s)", file=sys.stderr,
                  flush=True)
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps({"seconds": args.seconds, "seed": SEED,
                                                "test_size": TEST_SIZE, "records": records},
                                               indent=2, default=str))
    problems = check_splits(records)
    print(summarize(records, datasets, methods))
    for p in problems:
        print("SPLIT MISMATCH: " + p, file=sys.stderr)
    return 1 if problems or any(r.get("error") for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
