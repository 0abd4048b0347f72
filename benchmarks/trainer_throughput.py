"""Speed of nntune's training loop, and the peak memory of a whole `nntune.tune` run.

Part 1, throughput: `nntune.training.fit` (no validation data, fixed epochs) against the plain
PyTorch loop most tutorials teach, `DataLoader(TensorDataset(X, y), batch_size, shuffle=True)`,
on the same MLP (built by `nntune.models.build_model` for both, from the same seed), the same
data, epochs and optimizer (Adam, lr 1e-3), one thread. A small network (2 x 64, batch 32) and a
larger one (3 x 256, batch 256) run side by side in one process; each timing is repeated and the
median samples/s is reported, after an untimed warm-up of both loops (the first optimizer a
process builds pays a one-time import inside torch).

Part 2, memory: `nntune.tune` on a 1,000,000 x 50 float32 table (binary target) with a small
budget, in a child process per input form; the child's peak RSS (getrusage ru_maxrss) is
compared with the raw data size and with a child that only imported torch and nntune. The peak
is the child's VmHWM (what ru_maxrss measures, minus the parent's share that ru_maxrss
inherits at exec; see `max_rss_mb`).

Run from the repository root:

    .venv/bin/python benchmarks/trainer_throughput.py                 # both parts
    .venv/bin/python benchmarks/trainer_throughput.py --skip-memory --repeats 3 --epochs 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
for _name in THREAD_VARS:
    os.environ.setdefault(_name, "1")

REPO = Path(__file__).resolve().parent.parent
SEED = 0

# (label, hidden layers, units, batch size, target stated for the ratio nntune / DataLoader)
CONFIGS = (
    ("small MLP 2x64", 2, 64, 32, 2.0),
    ("larger MLP 3x256", 3, 256, 256, 1.0),
)


def make_data(rows: int, features: int, seed: int = SEED):
    """Standard-normal float32 features and a binary label from a noisy linear rule."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features), dtype=np.float32)
    w = rng.standard_normal(features).astype(np.float32)
    noise = rng.standard_normal(rows).astype(np.float32)
    y = (X @ w + 0.5 * noise > 0).astype(np.int64)
    return X, y


# --------------------------------------------------------------------------------------------
# Part 1: throughput
# --------------------------------------------------------------------------------------------

def build(n_layers: int, units: int, n_features: int):
    import torch

    from nntune.models import ModelMeta, build_model

    torch.manual_seed(SEED)
    return build_model("mlp", {"n_layers": n_layers, "units": units},
                       ModelMeta(n_features, 2, "binary"))


def train_loss(model, X, y) -> float:
    import torch
    from torch.nn import functional as F

    model.eval()
    with torch.no_grad():
        return float(F.cross_entropy(model(torch.from_numpy(X)), torch.from_numpy(y)))


def time_nntune(X, y, n_layers, units, batch, epochs) -> tuple[float, float]:
    from nntune.training import fit, make_head

    recipe = {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "batch_size": batch,
              "schedule": "constant"}
    model = build(n_layers, units, X.shape[1])
    head = make_head("binary", y, 2, recipe)
    started = time.perf_counter()
    fit(model, head, X, y, recipe, epochs=epochs, seed=SEED)
    seconds = time.perf_counter() - started
    return seconds, train_loss(model, X, y)


def time_dataloader(X, y, n_layers, units, batch, epochs) -> tuple[float, float]:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    model = build(n_layers, units, X.shape[1])
    torch.manual_seed(SEED)
    started = time.perf_counter()
    loader = DataLoader(TensorDataset(torch.from_numpy(X), torch.from_numpy(y)),
                        batch_size=batch, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - started
    return seconds, train_loss(model, X, y)


def time_sliced(X, y, n_layers, units, batch, epochs) -> tuple[float, float]:
    """The floor for any eager in-memory loop: one shuffle per epoch, contiguous slices, the
    same step. Not a competitor, a yardstick: what is left once the data pipeline costs ~0."""
    import torch
    from torch import nn

    model = build(n_layers, units, X.shape[1])
    torch.manual_seed(SEED)
    started = time.perf_counter()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(Xt))
        Xs, ys = Xt[perm], yt[perm]
        for lo in range(0, len(Xs), batch):
            optimizer.zero_grad()
            loss = loss_fn(model(Xs[lo:lo + batch]), ys[lo:lo + batch])
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - started
    return seconds, train_loss(model, X, y)


def throughput(rows: int, features: int, epochs: int, repeats: int) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    X, y = make_data(rows, features)
    runners = {"nntune": time_nntune, "dataloader": time_dataloader, "sliced": time_sliced}
    # Warm-up: the first optimizer of a process imports torch._dynamo (seconds, once).
    for run in runners.values():
        run(X[:512], y[:512], 1, 8, 32, 1)
    out = []
    for label, n_layers, units, batch, target in CONFIGS:
        times: dict[str, list[float]] = {name: [] for name in runners}
        losses: dict[str, list[float]] = {name: [] for name in runners}
        for r in range(repeats):
            order = list(runners)[r % len(runners):] + list(runners)[:r % len(runners)]
            for name in order:
                seconds, loss = runners[name](X, y, n_layers, units, batch, epochs)
                times[name].append(seconds)
                losses[name].append(loss)
        samples = rows * epochs
        rate = {name: samples / statistics.median(ts) for name, ts in times.items()}
        best = {name: samples / min(ts) for name, ts in times.items()}
        record = {
            "config": label, "n_layers": n_layers, "units": units, "batch_size": batch,
            "rows": rows, "features": features, "epochs": epochs, "repeats": repeats,
            "nntune_samples_per_s": rate["nntune"],
            "dataloader_samples_per_s": rate["dataloader"],
            "sliced_samples_per_s": rate["sliced"],
            "ratio": rate["nntune"] / rate["dataloader"], "target_ratio": target,
            "best_samples_per_s": best, "best_ratio": best["nntune"] / best["dataloader"],
            "seconds": times, "final_train_loss": {k: statistics.median(v)
                                                   for k, v in losses.items()},
        }
        out.append(record)
        print(f"[throughput] {label}: nntune {rate['nntune']:,.0f}/s, DataLoader "
              f"{rate['dataloader']:,.0f}/s, ratio {record['ratio']:.2f}", file=sys.stderr,
              flush=True)
    return out


# --------------------------------------------------------------------------------------------
# Part 2: peak memory of a tune run (one child process per measurement)
# --------------------------------------------------------------------------------------------

def max_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM, the high-water mark of its own address space.

    getrusage's ru_maxrss would be the same number were it not inherited: Linux folds the
    spawning parent's peak into it at exec (Python's subprocess uses vfork), so a child
    started by a 500 MB parent reports at least 500 MB. VmHWM starts afresh at exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def memory_child(mode: str, rows: int, features: int, trials: int, max_epochs: int) -> dict:
    """Runs in the child. mode: 'baseline' (imports only), 'warm' (imports + a tiny fit), 'array' or
    'frame' (a tune run)."""
    import tempfile

    import torch

    import nntune
    import nntune.api  # noqa: F401  (what tune() imports: optuna, scikit-learn, pandas, skops)

    torch.set_num_threads(1)
    record: dict = {"mode": mode, "after_imports_mb": max_rss_mb()}
    record["after_imports_current_mb"] = current_rss_mb()
    if mode == "baseline":
        record["peak_mb"] = max_rss_mb()
        return record
    if mode == "warm":  # imports plus one tiny training run: torch's lazy imports are paid
        from nntune.training import fit, make_head

        Xs, ys = make_data(256, features)
        head = make_head("binary", ys, 2, {})
        fit(build(1, 8, features), head, Xs, ys, {"batch_size": 32}, epochs=1)
        record["peak_mb"] = max_rss_mb()
        record["current_mb"] = current_rss_mb()
        return record
    X, y = make_data(rows, features)
    record["raw_mb"] = X.nbytes / 2**20
    data: object = X
    if mode == "frame":
        import pandas as pd

        data = pd.DataFrame(X, columns=[f"x{i}" for i in range(features)], copy=False)
        data["target"] = y
        del X
    record["data_ready_mb"] = max_rss_mb()
    record["data_ready_current_mb"] = current_rss_mb()
    stages: dict[str, float] = {}

    def on_start(plan: dict) -> None:  # after loading, checking and encoding the folds
        stages["search_start_peak_mb"] = max_rss_mb()
        stages["search_start_current_mb"] = current_rss_mb()

    def after_trial(study, trial) -> None:
        stages[f"after_trial_{trial.number}_peak_mb"] = max_rss_mb()

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nntune-mem-") as tmp:
        kwargs = {"y": y} if mode == "array" else {"target": "target"}
        result = nntune.tune(data, **kwargs, trials=trials, max_epochs=max_epochs, threads=1,
                             seed=SEED, out=Path(tmp) / "run", study="memory",
                             callbacks=[after_trial], on_start=on_start)
    record.update(stages)
    record["tune_seconds"] = round(time.monotonic() - started, 1)
    record["peak_mb"] = max_rss_mb()
    record["test_scores"] = result.test_scores
    record["n_trials"] = result.n_trials
    return record


def run_memory_child(mode: str, args: argparse.Namespace) -> dict:
    env = {**os.environ, **{name: "1" for name in THREAD_VARS}}
    command = [sys.executable, str(Path(__file__).resolve()), "--memory-child", mode,
               "--mem-rows", str(args.mem_rows), "--mem-features", str(args.mem_features),
               "--mem-trials", str(args.mem_trials), "--mem-epochs", str(args.mem_epochs)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO,
                          timeout=3600)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-15:]
    return {"mode": mode, "error": "\n".join(tail) or f"exit code {proc.returncode}"}


def memory(args: argparse.Namespace) -> list[dict]:
    records = []
    baseline = run_memory_child("baseline", args)
    warm = run_memory_child("warm", args)
    records += [baseline, warm]
    base = baseline.get("peak_mb")
    for mode in args.mem_inputs.split(","):
        record = run_memory_child(mode.strip(), args)
        if base is not None and record.get("peak_mb") is not None:
            record["baseline_mb"] = base
            record["peak_minus_baseline_mb"] = record["peak_mb"] - base
            record["ratio_to_raw"] = record["peak_minus_baseline_mb"] / record["raw_mb"]
        if warm.get("peak_mb") is not None and record.get("peak_mb") is not None:
            record["warm_baseline_mb"] = warm["peak_mb"]
            record["ratio_to_raw_warm"] = (record["peak_mb"] - warm["peak_mb"]) / record["raw_mb"]
        records.append(record)
        shown = (f"peak {record['peak_mb']:.0f} MB" if "peak_mb" in record
                 else "ERROR " + record.get("error", ""))
        print(f"[memory] {mode}: {shown}", file=sys.stderr, flush=True)
    return records


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

def report(speed: list[dict], mem: list[dict]) -> str:
    lines = []
    if speed:
        first = speed[0]
        lines += [f"Throughput: {first['rows']:,} rows x {first['features']} features, "
                  f"{first['epochs']} epoch(s), Adam 1e-3, 1 thread, median of "
                  f"{first['repeats']} runs.", "",
                  "| network | batch | nntune fit (samples/s) | DataLoader loop (samples/s) "
                  "| ratio | target | met | ratio of best runs | sliced-tensor floor (samples/s) "
                  "| nntune / floor | final train loss (nntune / DataLoader) |",
                  "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"]
        for r in speed:
            met = "yes" if r["ratio"] >= r["target_ratio"] else "no"
            loss = r["final_train_loss"]
            lines.append(
                f"| {r['config']} | {r['batch_size']} | {r['nntune_samples_per_s']:,.0f} | "
                f"{r['dataloader_samples_per_s']:,.0f} | {r['ratio']:.2f}x | "
                f">= {r['target_ratio']:.1f}x | {met} | {r['best_ratio']:.2f}x | "
                f"{r['sliced_samples_per_s']:,.0f} | "
                f"{r['nntune_samples_per_s'] / r['sliced_samples_per_s']:.2f}x | "
                f"{loss['nntune']:.4f} / {loss['dataloader']:.4f} |")
        lines.append("")
    if mem:
        base = next((r for r in mem if r.get("mode") == "baseline"), {})
        warm = next((r for r in mem if r.get("mode") == "warm"), {})
        lines += [f"Peak memory of nntune.tune (VmHWM of the child). Baseline, a process "
                  f"that only imported nntune.api (torch, optuna, scikit-learn, pandas, skops): peak {base.get('peak_mb', 0):.0f} MiB "
                  f"(RSS {base.get('after_imports_current_mb', 0):.0f} MiB once imports are done). "
                  f"Warm baseline, the same plus one tiny training run: peak "
                  f"{warm.get('peak_mb', 0):.0f} MiB.",
                  "",
                  "| input | raw float32 data | peak RSS | peak - baseline | (peak - baseline) "
                  "/ raw | target | met | (peak - warm baseline) / raw | RSS with data ready "
                  "| peak at search start |",
                  "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
        for r in mem:
            if r.get("mode") in ("baseline", "warm"):
                continue
            if "error" in r:
                lines.append(f"| {r['mode']} | error: {r['error'].splitlines()[-1]} |")
                continue
            met = "yes" if r["ratio_to_raw"] < 3 else "no"
            lines.append(
                f"| {r['mode']} | {r['raw_mb']:.0f} MiB | {r['peak_mb']:.0f} MiB | "
                f"{r['peak_minus_baseline_mb']:.0f} MiB | {r['ratio_to_raw']:.2f}x | < 3x | {met} | "
                f"{r.get('ratio_to_raw_warm', float('nan')):.2f}x | "
                f"{r['data_ready_current_mb']:.0f} MiB | "
                f"{r.get('search_start_peak_mb', float('nan')):.0f} MiB |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows for the throughput data")
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--mem-rows", type=int, default=1_000_000)
    parser.add_argument("--mem-features", type=int, default=50)
    parser.add_argument("--mem-trials", type=int, default=2)
    parser.add_argument("--mem-epochs", type=int, default=2)
    parser.add_argument("--mem-inputs", default="array,frame",
                        help="input forms for the memory runs: array (X, y=...), frame (DataFrame)")
    parser.add_argument("--out", type=Path, help="write the measurements to this JSON file")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_child:
        record = memory_child(args.memory_child, args.mem_rows, args.mem_features,
                              args.mem_trials, args.mem_epochs)
        print("RESULT " + json.dumps(record, default=str), flush=True)
        return 0

    import nntune

    print(f"nntune {nntune.__version__} from {Path(nntune.__file__).parent}", file=sys.stderr)
    speed = [] if args.skip_throughput else throughput(args.rows, args.features, args.epochs,
                                                       args.repeats)
    mem = [] if args.skip_memory else memory(args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"nntune_version": nntune.__version__,
                                        "nntune_file": nntune.__file__,
                                        "throughput": speed, "memory": mem}, indent=2,
                                       default=str))
    print(report(speed, mem))
    return 1 if any("error" in r for r in mem) else 0


if __name__ == "__main__":
    sys.exit(main())
