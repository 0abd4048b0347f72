"""What a user gets from one minute of tuning on a table: nntune against the tuners, networks and
references a user would otherwise reach for.

Every method sees the same 80/20 split (stratified for classification, nntune's own
`load_tabular` and `split_train_test`), the same wall-clock budget and one thread. The plain
learners get nntune's encoded features (`encode_split`, fitted on the training rows); nntune,
pytabkit and AutoGluon read the table themselves. Each (data set, method, seed) runs in its own Python process,
one at a time, so thread settings, caches and memory never carry over from one method to the
next. The seed changes the shared split and each method's own seed.

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
  torch_mlp     an untuned 2 x 128 ReLU PyTorch MLP, Adam 1e-3, batch 128, early stopping on
                10% of the training rows: the network a user writes by hand.
  realmlp_td    pytabkit's RealMLP with its tuned defaults (RealMLP_TD_Classifier/Regressor).
  tabm_d        pytabkit's TabM with its defaults (TabM_D_Classifier/Regressor).
  autogluon_nn  AutoGluon's TabularPredictor with only its neural models (NN_TORCH, FASTAI) at
                their defaults, time_limit=budget, num_cpus=1.
  hgb           HistGradientBoosting with default settings: an untuned, non-neural reference.
  logreg        LogisticRegression / Ridge with default settings: the linear reference.
  nntune_*      nntune with one option changed (NNTUNE_VARIANTS below: final refit, one
                validation split, ensemble 1 or 8, no report, no population training, no label smoothing), to
                measure a default on every table; named in --methods only, ranked beside the
                others, never an anchor.
(the anchors that tune nothing: benchmarks/_tabular_anchors.py). realmlp_td, tabm_d and
autogluon_nn need packages the project does not depend on: realmlp_td and tabm_d run under
.venv-bench/bin/python (`make bench-env`), autogluon_nn under .venv-autogluon/bin/python
(`make bench-env-autogluon`: autogluon.tabular 1.6.3 needs pandas<2.4 and pyarrow<25, so it gets
an environment of its own, pinned in requirements-autogluon.txt, where nntune, which loads and
splits the table there too, computes the same split under pandas 2.3). Where a method's
environment or package is missing, it is recorded as skipped, with the reason (which make target
to run), and the run goes on. Methods without a time limit of their own (realmlp_td, tabm_d, hgb, logreg) run their defaults to the
end: every record carries the seconds it took.

Records go to --out, one JSON line per (data set, method, seed) as each finishes; a rerun with
the same --out skips what is there for the same budget and split (so the run can be spread over
several sessions). The summary (markdown, printed and written beside --out as <name>.md): the
score per table (mean over seeds: accuracy, or R^2 for regression), mean rank and wins over
tables, nntune against HGB and against the best neural anchor, and the paired difference nntune
minus each anchor over (table, seed) with its 95% t-interval.

Run from the repository root:

    make bench-env                                                     # pytabkit in .venv-bench
    make bench-env-autogluon                                           # AutoGluon in .venv-autogluon
    .venv/bin/python benchmarks/tabular.py --seconds 5 --seeds 0 --datasets iris,glass   # smoke test
    .venv/bin/python benchmarks/tabular.py                             # everything: 60 s, seeds 0,1,2
    .venv/bin/python benchmarks/tabular.py --summary-only              # the summary of what is there
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import signal
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
BENCH_PYTHON = REPO / ".venv-bench" / "bin" / "python"
AUTOGLUON_PYTHON = REPO / ".venv-autogluon" / "bin" / "python"
DEFAULT_OUT = Path("benchmarks") / "results" / "tabular.jsonl"

TEST_SIZE = 0.2
DEFAULT_SEEDS = (0, 1, 2)
SYNTHETIC_SEED = 0  # the synthetic table itself stays the same for every seed
BUILTINS = ("digits", "breast_cancer", "wine", "iris", "diabetes")
CSV_TABLES = {
    "tips": ("tips.csv", "tip"),
    "taxis": ("taxis.csv", "payment"),
    # The development tables (../shared/data/README.md); nntune detects the intended task of
    # each (wine_quality_white: multiclass, as detected; beijing_pm25, auto_imports: regression).
    "wine_quality_white": ("wine_quality_white.csv", "quality"),
    "beijing_pm25": ("beijing_pm25.csv", "pm25"),
    "oil_spill": ("oil_spill.csv", "spill"),
    "horse_colic": ("horse_colic.csv", "outcome"),
    "ecoli": ("ecoli.csv", "site"),
    "glass": ("glass.csv", "glass_type"),
    "haberman": ("haberman.csv", "survival"),
    "wheat_seeds": ("wheat_seeds.csv", "variety"),
    "auto_imports": ("auto_imports.csv", "price"),
    "breast_cancer_recurrence": ("breast_cancer_recurrence.csv", "recurrence"),
    "new_thyroid": ("new_thyroid.csv", "state"),
}
DATASETS = (*BUILTINS, "tips", "taxis", "synthetic",
            *(name for name in CSV_TABLES if name not in ("tips", "taxis")))
METHODS = ("nntune", "optuna_torch", "sklearn_mlp", "torch_mlp", "realmlp_td", "tabm_d",
           "autogluon_nn", "hgb", "logreg")
NEURAL = ("nntune", "optuna_torch", "sklearn_mlp", "torch_mlp", "realmlp_td", "tabm_d",
          "autogluon_nn")
# nntune with one option changed, for measuring a default on every table (name them in
# --methods; they are not run by default, and they are nntune, never an anchor).
NNTUNE_VARIANTS = {
    "nntune_refit": {"final": "refit"},      # the delivered model retrained on all rows
    "nntune_onesplit": {"cv": "none"},       # one 20% validation split instead of cv auto
    # (training.ensemble is a config key, not a flat option: passed as a config dict)
    "nntune_ens1": {"config": {"training": {"ensemble": 1}}},  # the best trial's fold models alone
    "nntune_ens8": {"config": {"training": {"ensemble": 8}}},  # greedy selection over the top 8
    "nntune_noreport": {"report": False},    # the budget without the report's share
    "nntune_popoff": {"population": "off"},  # every trial trained alone (no population training)
    "nntune_nols": {"config": {"training": {"label_smoothing": 0.0}}},  # classifiers not smoothed
}
# Methods that stop at the budget themselves; the others run their defaults to the end.
BUDGETED = ("nntune", "optuna_torch", "sklearn_mlp", "torch_mlp", "autogluon_nn", *NNTUNE_VARIANTS)
KNOWN_METHODS = (*METHODS, *NNTUNE_VARIANTS)
TITLES = {"nntune": "nntune", "optuna_torch": "Optuna example (PyTorch)",
          "sklearn_mlp": "sklearn MLP search", "torch_mlp": "PyTorch MLP (untuned)",
          "realmlp_td": "RealMLP-TD", "tabm_d": "TabM-D", "autogluon_nn": "AutoGluon NN",
          "hgb": "HGB (untuned)", "logreg": "linear (untuned)",
          "nntune_refit": "nntune final=refit", "nntune_onesplit": "nntune cv=none",
          "nntune_ens1": "nntune ensemble=1", "nntune_ens8": "nntune ensemble=8",
          "nntune_noreport": "nntune without report", "nntune_popoff": "nntune population=off",
          "nntune_nols": "nntune label_smoothing=0"}
# Methods whose package the project does not depend on: the module they need, and the
# environment that has it (autogluon.tabular needs pandas<2.4, so not .venv-bench: constraints.txt
# pins pandas 3), with the make target that builds it.
BENCH_ONLY = {"realmlp_td": "pytabkit", "tabm_d": "pytabkit", "autogluon_nn": "autogluon.tabular"}
BENCH_ENVS = {"pytabkit": (BENCH_PYTHON, "bench-env"),
              "autogluon.tabular": (AUTOGLUON_PYTHON, "bench-env-autogluon")}
MISSING_REASON = {
    "pytabkit": "pytabkit is not installed in .venv-bench: run `make bench-env`",
    "autogluon.tabular": (
        "autogluon.tabular is not installed in .venv-autogluon: run `make bench-env-autogluon` "
        "(its own environment: autogluon.tabular 1.6.3 requires pandas<2.4 and pyarrow<25, "
        "constraints.txt pins pandas 3.1.1 and pyarrow 26.0.1; see "
        "benchmarks/requirements-autogluon.txt)"),
}
# A child that runs far past its budget is stopped; methods without a time limit of their own
# get --timeout seconds (their defaults can take long on the 41,757-row beijing_pm25).
UNBUDGETED_TIMEOUT = 7200.0

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
                                   n_redundant=4, n_classes=2, random_state=SYNTHETIC_SEED)
        frame = pd.DataFrame(X.astype(np.float32), columns=[f"x{i}" for i in range(20)])
        frame["target"] = y
        target = "target"
    else:
        raise SystemExit(f"unknown data set '{name}'; known: {', '.join(DATASETS)}")
    frame = frame.loc[frame[target].notna()].reset_index(drop=True)
    return frame, target


def shared_split(frame, target: str, seed: int):
    """nntune's table and its train/test rows, exactly as nntune.tune computes them for this
    seed."""
    from nntune.data import load_tabular, split_train_test

    table = load_tabular(frame, target)
    train_rows, test_rows = split_train_test(table, TEST_SIZE, seed)
    return table, train_rows, test_rows


def fingerprint(rows) -> str:
    import numpy as np

    return hashlib.sha256(np.asarray(rows, dtype=np.int64).tobytes()).hexdigest()[:16]


def test_score(task: str, y_true, y_pred) -> float:
    import numpy as np
    from sklearn.metrics import accuracy_score, r2_score

    if task == "regression":
        return float(r2_score(y_true, np.asarray(y_pred, dtype=np.float64)))
    return float(accuracy_score(y_true, np.asarray(y_pred)))


# --------------------------------------------------------------------------------------------
# The tuners. Each returns (test score, details) and runs inside its own worker process.
# --------------------------------------------------------------------------------------------

def run_nntune(frame, target, table, train_rows, test_rows, seconds, seed, options=None):
    import tempfile

    import nntune

    with tempfile.TemporaryDirectory(prefix="nntune-bench-") as tmp:
        result = nntune.tune(frame, target=target, timeout=seconds, threads=1, seed=seed,
                             test_size=TEST_SIZE, out=Path(tmp) / "run", study="bench",
                             **(options or {}))
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


def run_optuna_torch(split, task, n_classes, seconds, seed):
    """The objective as Optuna's PyTorch example builds it, on the encoded table."""
    import numpy as np
    import optuna
    import torch
    from sklearn.model_selection import train_test_split
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.manual_seed(seed)
    regression = task == "regression"
    X_train, y_train = split.X_train, split.y_train
    X_test, y_test = split.X_eval, split.y_eval
    n_features = X_train.shape[1]
    out_dim = 1 if regression else n_classes

    # Stratified where every class has the two training rows that needs (ecoli's smallest do).
    stratify = None if regression or np.bincount(y_train).min() < 2 else y_train
    fit_idx, val_idx = train_test_split(
        np.arange(len(y_train)), test_size=0.2, random_state=seed, stratify=stratify)

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
                                sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner())
    started = time.monotonic()
    study.optimize(objective, timeout=seconds)
    search_seconds = time.monotonic() - started
    states = {s.name.lower(): sum(t.state == s for t in study.trials)
              for s in optuna.trial.TrialState if any(t.state == s for t in study.trials)}
    # Retrain the best configuration on every training row and score the test rows.
    torch.manual_seed(seed)
    best = study.best_trial
    model, mean, std, _ = train(optuna.trial.FixedTrial(best.params), np.arange(len(y_train)))
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(X_test))
    predicted = out.reshape(-1).numpy() * std + mean if regression else out.argmax(1).numpy()
    return test_score(task, y_test, predicted), {
        "trials": states, "best_params": best.params, "best_value": best.value,
        "search_seconds": round(search_seconds, 2)}


def run_sklearn_mlp(split, task, seconds, seed):
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
        common = {"max_iter": 200, "early_stopping": True, "random_state": seed, **params}
        if regression:  # targets standardized, as any practitioner would for an MLP
            return TransformedTargetRegressor(MLPRegressor(**common), transformer=StandardScaler())
        return MLPClassifier(**common)

    cv = (KFold(3, shuffle=True, random_state=seed) if regression
          else StratifiedKFold(3, shuffle=True, random_state=seed))
    scoring = "r2" if regression else "accuracy"
    started = time.monotonic()
    best_params, best_cv, costs = None, -np.inf, []
    for params in ParameterSampler(distributions, n_iter=100_000, random_state=seed):
        elapsed = time.monotonic() - started
        if costs and elapsed + float(np.mean(costs)) > seconds:
            break
        t0 = time.monotonic()
        folds = cross_val_score(make(params), split.X_train, split.y_train, cv=cv,
                                scoring=scoring, error_score=np.nan)
        # A fold can fail where a class has a single row in its training part (MLP's early
        # stopping splits off a stratified validation share): the folds that ran decide.
        value = float(np.nanmean(folds)) if np.isfinite(folds).any() else np.nan
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


def run_hgb(split, task, seed):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    cls = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    model = cls(random_state=seed).fit(split.X_train, split.y_train)
    return test_score(task, split.y_eval, model.predict(split.X_eval)), {}


def worker(method: str, dataset: str, seconds: float, seed: int) -> dict:
    """Run one method on one data set with one seed in this process and return its record."""
    import _tabular_anchors as anchors
    import torch

    import nntune

    torch.set_num_threads(1)
    frame, target = load_frame(dataset)
    table, train_rows, test_rows = shared_split(frame, target, seed)
    started = time.monotonic()
    if method == "nntune" or method in NNTUNE_VARIANTS:
        score, details = run_nntune(frame, target, table, train_rows, test_rows, seconds, seed,
                                    NNTUNE_VARIANTS.get(method))
    elif method in ("realmlp_td", "tabm_d", "autogluon_nn"):
        if method == "autogluon_nn":
            predicted, details = anchors.run_autogluon_nn(table, train_rows, test_rows, seconds,
                                                          seed)
        else:
            predicted, details = anchors.run_pytabkit(method, table, train_rows, test_rows, seed)
        score = test_score(table.task, table.y[test_rows], predicted)
    else:
        from nntune.data import encode_split

        split = encode_split(table, train_rows, test_rows)
        if method == "optuna_torch":
            score, details = run_optuna_torch(split, table.task, len(table.classes), seconds,
                                              seed)
        elif method == "sklearn_mlp":
            score, details = run_sklearn_mlp(split, table.task, seconds, seed)
        elif method == "hgb":
            score, details = run_hgb(split, table.task, seed)
        elif method == "logreg":
            predicted, details = anchors.run_logreg(split, table.task, seed)
            score = test_score(table.task, split.y_eval, predicted)
        elif method == "torch_mlp":
            predicted, details = anchors.run_torch_mlp(split, table.task, len(table.classes),
                                                       seconds, seed)
            score = test_score(table.task, split.y_eval, predicted)
        else:
            raise SystemExit(f"unknown method '{method}'; known: {', '.join(KNOWN_METHODS)}")
        details["encoded_features"] = int(split.n_features)
    return {
        "dataset": dataset, "method": method, "seed": seed, "status": "ok", "task": table.task,
        "rows": int(table.n_rows), "features": len(table.schema.columns),
        "metric": "r2" if table.task == "regression" else "accuracy", "score": score,
        "seconds": round(time.monotonic() - started, 2), "threads": torch.get_num_threads(),
        "train_rows": int(len(train_rows)), "test_rows": int(len(test_rows)),
        "test_fingerprint": fingerprint(test_rows), "details": details,
        "nntune_version": nntune.__version__, "nntune_file": relative(nntune.__file__),
        "torch_version": torch.__version__,
    }


# --------------------------------------------------------------------------------------------
# The driver: one child process per (data set, method, seed), strictly one after another.
# --------------------------------------------------------------------------------------------

def relative(path) -> str:
    """A path as the records keep it: relative to the repository root."""
    return os.path.relpath(os.path.abspath(path), REPO)


def machine() -> dict:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"nproc": nproc, "cpu": cpu}


def interpreter(method: str) -> str:
    """The Python a method's process runs under: the benchmark environment's (.venv-bench, or
    .venv-autogluon for AutoGluon) for the packages the project does not depend on, this one
    otherwise."""
    module = BENCH_ONLY.get(method)
    return str(BENCH_ENVS[module][0]) if module else sys.executable


_PROBED: dict[str, str | None] = {}


def missing_package(method: str) -> str | None:
    """Why `method` cannot run here (its environment or its package there is missing), or
    None."""
    module = BENCH_ONLY.get(method)
    if module is None:
        return None
    if module not in _PROBED:
        python, target = BENCH_ENVS[module]
        if not python.exists():
            _PROBED[module] = (f"{relative(python.parent.parent)} does not exist: run "
                               f"`make {target}`")
        else:
            probe = ("import importlib.util, sys\n"
                     f"try:\n    found = importlib.util.find_spec({module!r}) is not None\n"
                     "except ImportError:\n    found = False\n"
                     "sys.exit(0 if found else 3)")
            proc = subprocess.run([str(python), "-c", probe], capture_output=True,
                                  cwd=REPO, timeout=300)
            _PROBED[module] = None if proc.returncode == 0 else MISSING_REASON[module]
    return _PROBED[module]


def child_timeout(method: str, seconds: float, timeout: float | None) -> float:
    if timeout is not None:
        return timeout
    budgeted = 10 * seconds + 600
    return budgeted if method in BUDGETED else max(budgeted, UNBUDGETED_TIMEOUT)


def run_child(method: str, dataset: str, seconds: float, seed: int, timeout: float) -> dict:
    env = {**os.environ, **{name: "1" for name in THREAD_VARS}, "PYTHONHASHSEED": "0"}
    command = [interpreter(method), str(Path(__file__).resolve()), "--worker", method,
               "--dataset", dataset, "--seconds", str(seconds), "--seeds", str(seed)]
    started = time.monotonic()
    # Its own process group, so that a timeout also ends whatever the method started.
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=REPO, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        return {"dataset": dataset, "method": method, "seed": seed, "status": "error",
                "score": None, "seconds": round(time.monotonic() - started, 2),
                "process_seconds": round(time.monotonic() - started, 2),
                "error": f"timed out after {timeout:.0f} s (--timeout)"}
    wall = round(time.monotonic() - started, 2)
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            record = json.loads(line[len("RESULT "):])
            record["process_seconds"] = wall
            return record
    tail = (stderr or stdout).strip().splitlines()[-15:]
    return {"dataset": dataset, "method": method, "seed": seed, "status": "error",
            "score": None, "seconds": wall, "process_seconds": wall,
            "error": "\n".join(tail) or f"exit code {proc.returncode}"}


def split_fingerprint(dataset: str, seed: int) -> str | None:
    """The shared split's test rows, computed here, to tell whether a stored record is still
    about the same rows (None where the table cannot be read: its runs record the error)."""
    try:
        frame, target = load_frame(dataset)
        _, _, test_rows = shared_split(frame, target, seed)
    except Exception as exc:  # noqa: BLE001 - the children record the same failure in full
        print(f"[{dataset} / seed {seed}] cannot compute the split: {exc}", file=sys.stderr)
        return None
    return fingerprint(test_rows)


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a killed run
            print(f"{path}:{number}: not a JSON record, ignored", file=sys.stderr)
    return records


def reusable(record: dict, seconds: float, fingerprint_now: str | None,
             retry_errors: bool) -> bool:
    """Whether a stored record stands for this run: the same budget, test share and test rows,
    and a result (an error too, unless --retry-errors; a skip never: the package may be there
    now)."""
    if record.get("budget") != seconds or record.get("test_size") != TEST_SIZE:
        return False
    if fingerprint_now is None or record.get("split_fingerprint") != fingerprint_now:
        return False
    status = record.get("status")
    return status == "ok" or (status == "error" and not retry_errors)


def select(records: list[dict], seconds: float, datasets, methods, seeds) -> dict:
    """The record that counts for each (data set, method, seed) at this budget: the latest one,
    a skip only where nothing else is there."""
    chosen: dict[tuple, dict] = {}
    for record in records:
        key = (record.get("dataset"), record.get("method"), record.get("seed"))
        if (record.get("budget") != seconds or key[0] not in datasets or key[1] not in methods
                or key[2] not in seeds):
            continue
        if record.get("status") == "skipped" and chosen.get(key, {}).get("status") in ("ok",
                                                                                     "error"):
            continue
        chosen[key] = record
    return chosen


# --------------------------------------------------------------------------------------------
# The summary: from the records alone, so it can be printed again at any time.
# --------------------------------------------------------------------------------------------

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


def t_interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its two-sided 95% Student-t interval."""
    from scipy.stats import t

    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


def check_splits(chosen: dict) -> list[str]:
    problems = []
    groups: dict[tuple, dict[str, str]] = {}
    for (d, m, s), r in chosen.items():
        for field in ("test_fingerprint", "split_fingerprint"):
            if r.get(field):
                groups.setdefault((d, s), {})[f"{m} ({field.split('_')[0]})"] = r[field]
    for (d, s), prints in sorted(groups.items(), key=str):
        if len(set(prints.values())) > 1:
            problems.append(f"{d}, seed {s}: test rows differ between methods: {prints}")
    return problems


def command_line(args, summary_only: bool = False) -> str:
    parts = [".venv/bin/python", "benchmarks/tabular.py", "--seconds", f"{args.seconds:g}",
             "--seeds", ",".join(str(s) for s in args.seed_list)]
    if args.datasets != ",".join(DATASETS):
        parts += ["--datasets", args.datasets]
    if args.methods != ",".join(METHODS):
        parts += ["--methods", args.methods]
    parts += ["--out", str(args.out)]
    if summary_only:
        parts.append("--summary-only")
    return " ".join(parts)


def summarize(chosen: dict, datasets: list[str], methods: list[str], seeds: list[int],
              seconds: float, command: str) -> str:
    ok = {k: r for k, r in chosen.items() if r.get("status") == "ok"}
    shown = [m for m in methods if any(k[1] == m for k in chosen)] or methods
    machines = sorted({f"{r['machine']['nproc']} cores (nproc), {r['machine']['cpu']}"
                       for r in chosen.values() if r.get("machine")})
    lines = [f"# nntune against the alternatives: {seconds:g} s per method and table",
             "",
             f"- Budget: {seconds:g} s of wall clock per (table, method, seed), one thread, "
             f"one process at a time; test share {TEST_SIZE:g} (stratified for classification).",
             f"- Seeds: {', '.join(str(s) for s in seeds)} (each: its own split and method seed).",
             f"- Command: `{command}`",
             f"- Machine: {'; '.join(machines) or 'no records yet'}",
             f"- Records: {len(ok)} scored, "
             f"{sum(r.get('status') == 'error' for r in chosen.values())} failed, "
             f"{sum(r.get('status') == 'skipped' for r in chosen.values())} skipped, "
             f"{len(datasets) * len(methods) * len(seeds) - len(chosen)} not run yet.",
             "",
             "## Test score per table (mean over seeds; accuracy, or R^2 for regression)",
             "",
             "| table | task | rows | metric | " + " | ".join(TITLES[m] for m in shown) + " |",
             "|---|---|---:|---|" + "---:|" * len(shown)]
    means: dict[tuple[str, str], float] = {}
    complete: dict[tuple[str, str], bool] = {}
    for d in datasets:
        info = next((r for (dd, _, _), r in ok.items() if dd == d), {})
        cells = []
        for m in shown:
            scores = [ok[(d, m, s)]["score"] for s in seeds if (d, m, s) in ok]
            states = {chosen[(d, m, s)].get("status") for s in seeds if (d, m, s) in chosen}
            if scores:
                means[(d, m)] = sum(scores) / len(scores)
                complete[(d, m)] = len(scores) == len(seeds)
                cell = f"{means[(d, m)]:.4f}"
                if len(scores) < len(seeds):
                    cell += f" ({len(scores)}/{len(seeds)})"
                cells.append(cell)
            else:
                cells.append("skipped" if states == {"skipped"} else
                             "error" if "error" in states else "-")
        lines.append(f"| {d} | {info.get('task', '?')} | {info.get('rows', '?')} | "
                     f"{info.get('metric', '?')} | " + " | ".join(cells) + " |")

    # Ranks over the tables where every method that ran anywhere has all its seeds.
    ranked_methods = [m for m in shown if any((d, m) in means for d in datasets)]
    rank_sums = dict.fromkeys(ranked_methods, 0.0)
    wins = dict.fromkeys(ranked_methods, 0)
    ranked, unranked = [], []
    for d in datasets:
        if ranked_methods and all(complete.get((d, m)) for m in ranked_methods):
            table_ranks = ranks({m: means[(d, m)] for m in ranked_methods})
            for m, r in table_ranks.items():
                rank_sums[m] += r
                wins[m] += r == min(table_ranks.values())
            ranked.append(d)
        else:
            unranked.append(d)
    lines += ["", "## Over the tables", ""]
    if ranked and len(ranked_methods) > 1:
        lines += [f"Mean rank over {len(ranked)} table(s) (rank per table on the seed-mean "
                  "score, 1 = best, ties share the mean rank) and wins (first place, shared "
                  "places count for each):", "",
                  "| method | mean rank | wins |", "|---|---:|---:|"]
        for m in sorted(ranked_methods, key=lambda m: rank_sums[m]):
            lines.append(f"| {TITLES[m]} | {rank_sums[m] / len(ranked):.2f} | {wins[m]} |")
        lines.append("")
    if unranked:
        lines.append(f"Not ranked (a method lacks a score for some seed): {', '.join(unranked)}.")
        lines.append("")
    if "nntune" in shown and "hgb" in shown:
        both = [d for d in datasets if (d, "nntune") in means and (d, "hgb") in means]
        ahead = [d for d in both if means[(d, "nntune")] > means[(d, "hgb")]]
        if both:
            lines.append(f"nntune ahead of untuned HGB on {len(ahead)} of {len(both)} tables "
                         "(seed-mean scores).")
    gaps = []
    for d in datasets:
        anchors = {m: means[(d, m)] for m in NEURAL if m != "nntune" and (d, m) in means}
        if (d, "nntune") in means and anchors:
            best = max(anchors, key=anchors.get)
            gaps.append((anchors[best] - means[(d, "nntune")], d, best))
    if gaps:
        behind = [g for g in gaps if g[0] > 0]
        if behind:
            gap, d, best = max(behind)
            lines.append(f"nntune trails the best neural anchor on {len(behind)} of {len(gaps)} "
                         f"tables; the largest gap: {gap:.4f} on {d} (behind {TITLES[best]}).")
        else:
            lines.append(f"nntune is at or above the best neural anchor on all {len(gaps)} "
                         "tables.")

    lines += ["", "## nntune minus each anchor, paired over (table, seed)", "",
              "Differences of test scores (accuracy and R^2 alike, as they come), mean and 95% "
              "t-interval; positive: nntune better.", "",
              "| anchor | pairs | nntune better | mean difference | 95% interval |",
              "|---|---:|---:|---:|---|"]
    for m in shown:
        if m == "nntune":
            continue
        diffs = [ok[(d, "nntune", s)]["score"] - ok[(d, m, s)]["score"]
                 for d in datasets for s in seeds if (d, "nntune", s) in ok and (d, m, s) in ok]
        if not diffs:
            lines.append(f"| {TITLES[m]} | 0 | - | - | - |")
            continue
        mean, half = t_interval(diffs)
        interval = "-" if math.isnan(half) else f"[{mean - half:+.4f}, {mean + half:+.4f}]"
        lines.append(f"| {TITLES[m]} | {len(diffs)} | {sum(x > 0 for x in diffs)} | "
                     f"{mean:+.4f} | {interval} |")

    lines += ["", "## Wall-clock seconds per method (mean over seeds, after loading the table)",
              "", f"`*`: over the {seconds:g} s budget (the method has no time limit of its own, "
              "or overran it). Trials: complete ones, mean over seeds.", "",
              "| table | " + " | ".join(TITLES[m] for m in shown) + " |",
              "|---|" + "---:|" * len(shown)]
    for d in datasets:
        cells = []
        for m in shown:
            rs = [ok[(d, m, s)] for s in seeds if (d, m, s) in ok]
            if not rs:
                cells.append("-")
                continue
            secs = sum(r["seconds"] for r in rs) / len(rs)
            cell = f"{secs:.1f}{'*' if secs > seconds else ''}"
            if m in ("nntune", "optuna_torch", *NNTUNE_VARIANTS):
                done = [r.get("details", {}).get("trials", {}).get("complete", 0) for r in rs]
                cell += f", {sum(done) / len(done):.0f} trials"
            elif m == "sklearn_mlp":
                done = [r.get("details", {}).get("candidates", 0) for r in rs]
                cell += f", {sum(done) / len(done):.0f} cand."
            cells.append(cell)
        lines.append(f"| {d} | " + " | ".join(cells) + " |")

    troubles: dict[tuple[str, str, str], list[str]] = {}
    for (d, m, s), r in sorted(chosen.items(), key=str):
        if r.get("status") != "ok":
            reason = (r.get("error") or r.get("reason") or "").strip().splitlines()
            key = (m, r.get("status", "?"), reason[-1] if reason else "?")
            troubles.setdefault(key, []).append(f"{d}/{s}")
    if troubles:
        lines += ["", "## Skipped and failed (table/seed)", ""]
        for (m, status, reason), where in troubles.items():
            lines.append(f"- {TITLES[m]}, {status} on {len(where)} ({', '.join(where)}): {reason}")
    problems = check_splits(chosen)
    if problems:
        lines += ["", "## SPLIT MISMATCH", "", *[f"- {p}" for p in problems]]
    return "\n".join(lines) + "\n"


def parse_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="wall-clock budget per method, table and seed (default 60)")
    parser.add_argument("--seeds", default=",".join(str(s) for s in DEFAULT_SEEDS),
                        help="comma-separated seeds: each its own split and method seeds "
                             "(default 0,1,2)")
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help=f"comma-separated subset of: {','.join(DATASETS)}")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated subset of: {','.join(METHODS)}; also nntune "
                             f"variants (one option changed): {','.join(NNTUNE_VARIANTS)}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="JSON-lines file the records are appended to; what it holds for "
                             f"this budget and split is not run again (default {DEFAULT_OUT}); "
                             "the summary goes beside it (.md)")
    parser.add_argument("--summary-only", action="store_true",
                        help="print (and write) the summary of --out for this budget, run nothing")
    parser.add_argument("--retry-errors", action="store_true",
                        help="run again what failed before (default: a failure is a result)")
    parser.add_argument("--timeout", type=float,
                        help="seconds after which one method's process is stopped (default: "
                             f"10 x budget + 600, and at least {UNBUDGETED_TIMEOUT:.0f} for the "
                             "methods without a time limit of their own)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    try:
        args.seed_list = [int(s) for s in parse_list(args.seeds)]
    except ValueError:
        parser.error(f"--seeds takes integers separated by commas; got '{args.seeds}'")
    if not args.seed_list:
        parser.error("--seeds names no seed")
    if args.worker:
        record = worker(args.worker, args.dataset, args.seconds, args.seed_list[0])
        print("RESULT " + json.dumps(record, default=str), flush=True)
        return 0

    datasets, methods = parse_list(args.datasets), parse_list(args.methods)
    for name, known, given in (("data set", DATASETS, datasets), ("method", KNOWN_METHODS, methods)):
        unknown = [g for g in given if g not in known]
        if unknown:
            parser.error(f"unknown {name}(s) {', '.join(unknown)}; known: {', '.join(known)}")
    out = args.out if args.out.is_absolute() else REPO / args.out
    summary_path = out.with_suffix(".md")

    if not args.summary_only:
        stored = read_records(out)
        here = machine()
        ran = reused = 0
        # Seed by seed: a run stopped half-way leaves whole seeds, comparable across methods.
        for seed in args.seed_list:
            for d in datasets:
                split_print = split_fingerprint(d, seed)
                for m in methods:
                    if any(r.get("dataset") == d and r.get("method") == m
                           and r.get("seed") == seed
                           and reusable(r, args.seconds, split_print, args.retry_errors)
                           for r in stored):
                        reused += 1
                        continue
                    reason = missing_package(m)
                    if reason and any(r.get("dataset") == d and r.get("method") == m
                                      and r.get("seed") == seed and r.get("reason") == reason
                                      and r.get("budget") == args.seconds for r in stored):
                        reused += 1  # skipped before for the same reason: no second line
                        continue
                    if reason:
                        record = {"dataset": d, "method": m, "seed": seed, "status": "skipped",
                                  "score": None, "seconds": 0.0, "reason": reason}
                    else:
                        record = run_child(m, d, args.seconds, seed,
                                           child_timeout(m, args.seconds, args.timeout))
                    record.update({"budget": args.seconds, "test_size": TEST_SIZE,
                                   "split_fingerprint": split_print, "machine": here,
                                   "python": relative(interpreter(m)),
                                   "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with out.open("a") as f:
                        f.write(json.dumps(record, default=str) + "\n")
                    stored.append(record)
                    ran += 1
                    if record["status"] == "ok":
                        shown = f"{record['metric']}={record['score']:.4f}"
                    elif record["status"] == "skipped":
                        shown = "skipped: " + record["reason"].split(":")[0]
                    else:
                        shown = "ERROR " + ((record.get("error") or "").splitlines() or ["?"])[-1]
                    print(f"[{d} / {m} / seed {seed}] {shown} ({record['seconds']:.1f} s; "
                          f"process {record.get('process_seconds', 0.0):.1f} s)",
                          file=sys.stderr, flush=True)
        print(f"ran {ran}, {reused} already in {relative(out)}", file=sys.stderr)

    chosen = select(read_records(out), args.seconds, datasets, methods, args.seed_list)
    if not chosen:
        budgets = sorted({r.get("budget") for r in read_records(out)} - {None})
        print(f"{relative(out)} holds no record for a {args.seconds:g} s budget"
              + (f" (budgets there: {', '.join(f'{b:g}' for b in budgets)})" if budgets else ""),
              file=sys.stderr)
        return 1
    summary = summarize(chosen, datasets, methods, args.seed_list, args.seconds,
                        command_line(args))
    print(summary)
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(summary)
    print(f"summary written to {relative(summary_path)}", file=sys.stderr)
    problems = check_splits(chosen)
    for p in problems:
        print("SPLIT MISMATCH: " + p, file=sys.stderr)
    return 1 if problems or any(r.get("status") == "error" for r in chosen.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
