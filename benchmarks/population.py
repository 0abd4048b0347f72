"""Population training against one network at a time: samples per second, trials per minute
and the share of this CPU's matrix-multiply peak, in one run.

On a 20,000 x 32 table (binary label from a noisy linear rule, as benchmarks/trainer_throughput.py),
one thread, Adam without validation data for a fixed number of epochs:

- `fit`: nntune's sequential trainer, one network;
- DataLoader: the plain PyTorch loop most tutorials teach (`DataLoader(TensorDataset, shuffle=True)`);
- population K: `nntune.training.fit_population` with K members of the same shape, each with its
  own learning rate (log-spaced 3e-4..3e-2), its own seed and row order, K = 1, 8, 32, 128.

for a small MLP (2 x 64, batch 32) and a larger one (3 x 256, batch 256). Trials per minute
count trainings of that many epochs: K / seconds for a population, 1 / seconds for the others;
the ratio is to `fit`. The share of peak counts 6 floating-point operations per weight and
sample (forward 2, backward 4) against one thread's torch.mm on 2048 x 2048 float32 matrices.

`--auto-grid` measures instead what `population: auto` decides by (search/_population.py,
AUTO_MAX_STEP_WORK): 16 members against `fit` alone, both with validation data as trials
train, on a 4,096 x 14 regression table whose first 10 columns are numeric, for 2-layer MLPs of
16-256 units at batch 32-512, plain, with lite periodic embeddings (plr_lite) and with batch
norm; beside each, the step work `auto` computes and whether it trains that network in a
population.

`--cnn` asks whether populations would pay for the 1-D CNN of signals (the issue's second
family): the MNIST-1D shape (1 x 40 signals, 10 classes, batch 64), 3 blocks of conv -> batch
norm -> ReLU -> max pool by 2, global average, linear head, as `cnn` builds them, at 16-128
channels and kernels 3 and 7. K members as one network, the way a population would batch them
(every convolution grouped, `groups=K`, each member its own input channel, its own rows and its
own batch-norm statistics), against one member alone: seconds per training step (forward,
backward, Adam) and the speed-up K x alone / together.

Run from the repository root:

    .venv/bin/python benchmarks/population.py                      # the table in docs/population.md
    .venv/bin/python benchmarks/population.py --epochs 1 --repeats 1 --sizes 1,8
    .venv/bin/python benchmarks/population.py --auto-grid          # the auto rule's table (3 minutes)
    .venv/bin/python benchmarks/population.py --cnn                # 1-D CNN populations (about 14 minutes)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
              "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trainer_throughput import make_data, time_dataloader, time_nntune  # noqa: E402  (the same loops)

CONFIGS = (("small MLP 2x64", 2, 64, 32), ("larger MLP 3x256", 3, 256, 256))
SIZES = (1, 8, 32, 128)
SEED = 0


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """One thread's float32 matrix-multiply rate in FLOP/s (best of `repeats`)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * n ** 3 / best


def weights(n_layers: int, units: int, features: int, outputs: int = 2) -> int:
    widths = [features] + [units] * n_layers + [outputs]
    return sum(a * b for a, b in zip(widths, widths[1:], strict=False))


def time_population(X, y, n_layers, units, batch, epochs, k) -> float:
    import numpy as np
    import torch

    from nntune.models import ModelMeta, build_model
    from nntune.training import Member, fit_population, make_head

    members = []
    for i, lr in enumerate(np.geomspace(3e-4, 3e-2, k) if k > 1 else [1e-3]):
        recipe = {"optimizer": "adam", "lr": float(lr), "weight_decay": 0.0, "batch_size": batch,
                  "schedule": "constant", "n_layers": n_layers, "units": units}
        torch.manual_seed(SEED + i)
        module = build_model("mlp", {"n_layers": n_layers, "units": units}, ModelMeta(X.shape[1], 2, "binary"))
        members.append(Member(module, recipe, SEED + i))
    head = make_head("binary", y, 2, members[0].recipe)
    started = time.perf_counter()
    fit_population(members, head, X, y, epochs=epochs)
    return time.perf_counter() - started


def run(rows: int, features: int, epochs: int, repeats: int, sizes: tuple[int, ...]) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    X, y = make_data(rows, features)
    peak = matmul_peak()
    records = []
    for label, n_layers, units, batch in CONFIGS:
        time_nntune(X, y, n_layers, units, batch, 1)  # warm-up: the first optimizer pays torch's imports
        flops = 6 * weights(n_layers, units, features)
        base = statistics.median(time_nntune(X, y, n_layers, units, batch, epochs)[0] for _ in range(repeats))
        timings = {"fit": (base, 1), "DataLoader": (statistics.median(
            time_dataloader(X, y, n_layers, units, batch, epochs)[0] for _ in range(repeats)), 1)}
        for k in sizes:
            timings[f"population {k}"] = (statistics.median(
                time_population(X, y, n_layers, units, batch, epochs, k) for _ in range(repeats)), k)
        for name, (seconds, k) in timings.items():
            samples = k * rows * epochs / seconds
            records.append({"network": label, "batch": batch, "method": name, "members": k, "seconds": seconds,
                            "samples_per_s": samples, "trials_per_min": 60 * k / seconds,
                            "vs_fit": k * base / seconds, "peak_share": samples * flops / peak})
            print(f"# {label} {name}: {seconds:.2f} s, {samples:,.0f} samples/s", file=sys.stderr, flush=True)
    print(f"\nmatrix-multiply peak: {peak / 1e9:.1f} GFLOP/s (one thread, torch.mm 2048 x 2048 float32)")
    return records


GRID_UNITS = (16, 64, 128, 256)
GRID_BATCHES = (32, 64, 128, 256, 512)
GRID_KINDS = (("plain", {}), ("plr_lite", {"embedding": "plr_lite"}), ("batch norm", {"norm": "batch"}))
GRID_MEMBERS = 16


def auto_grid(epochs: int = 2) -> list[dict]:
    import numpy as np
    import torch

    from nntune.models import ModelMeta, build_model
    from nntune.search._population import AUTO_MAX_STEP_WORK, step_work
    from nntune.training import Member, fit, fit_population, get_metric, make_head

    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    rows, features, numeric = 4096, 14, 10
    X = rng.normal(size=(rows, features)).astype(np.float32)
    y = (X[:, 0] + np.sin(3 * X[:, 1]) + 0.1 * rng.normal(size=rows)).astype(np.float64)
    X_val, y_val = X[:800], y[:800]
    metric = get_metric("r2", "regression")
    records = []
    for units in GRID_UNITS:
        for batch in GRID_BATCHES:
            for kind, extra in GRID_KINDS:
                recipe = {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 3e-4, "n_layers": 2, "units": units,
                          "dropout": 0.1, "batch_size": batch, "schedule": "constant", "max_epochs": epochs,
                          "patience": 50, **extra}
                head = make_head("regression", y, 0, recipe)
                meta = ModelMeta(features, head.output_dim, "regression", extra={"numeric_columns": numeric})
                module = build_model("mlp", recipe, meta)
                fit(module, head, X[:500], y[:500], {**recipe, "max_epochs": 1})  # warm-up
                started = time.perf_counter()
                fit(module, head, X, y, recipe, X_val=X_val, y_val=y_val, metric=metric)
                alone = time.perf_counter() - started
                members = [Member(build_model("mlp", recipe, meta), recipe, SEED + i) for i in range(GRID_MEMBERS)]
                started = time.perf_counter()
                fit_population(members, head, X, y, X_val=X_val, y_val=y_val, metric=metric)
                together = time.perf_counter() - started
                work = step_work(recipe, features, numeric)
                records.append({"units": units, "batch": batch, "kind": kind, "work": work,
                                "speedup": GRID_MEMBERS * alone / together, "auto": work <= AUTO_MAX_STEP_WORK})
                print(f"# {units} units, batch {batch}, {kind}: {records[-1]['speedup']:.2f}x", file=sys.stderr,
                      flush=True)
    return records


CNN_CHANNELS = (16, 32, 59, 128)
CNN_KERNELS = (3, 7)
CNN_MEMBERS = (8, 32)


def grouped_cnn(k: int, channels: int, kernel: int, blocks: int = 3, length: int = 40, classes: int = 10):
    """k 1-D CNNs of one shape as one module: grouped convolutions keep the members apart."""
    from torch import nn

    layers, width_in = [], 1
    for _ in range(blocks):
        layers += [nn.Conv1d(k * width_in, k * channels, kernel, padding="same", groups=k),
                   nn.BatchNorm1d(k * channels), nn.ReLU(), nn.MaxPool1d(2)]
        width_in = channels
    # The head: a grouped 1x1 convolution after the global average is each member's linear layer.
    return nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Conv1d(k * channels, k * classes, 1, groups=k),
                         nn.Flatten())


def time_cnn_steps(k: int, channels: int, kernel: int, batch: int = 64, steps: int = 60) -> float:
    """Seconds per training step of k members together (each its own rows: input (batch, k, 40))."""
    import torch
    from torch.nn import functional as F

    torch.manual_seed(SEED)
    model = grouped_cnn(k, channels, kernel)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(batch, k, 40)
    y = torch.randint(0, 10, (batch * k,))
    for step in range(steps + 10):  # 10 warm-up steps
        if step == 10:
            started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        logits = model(x).view(batch, k, 10).reshape(batch * k, 10)
        F.cross_entropy(logits, y).backward()
        optimizer.step()
    return (time.perf_counter() - started) / steps


def cnn_grid() -> list[dict]:
    import statistics

    import torch

    torch.set_num_threads(1)
    records = []
    for channels in CNN_CHANNELS:
        for kernel in CNN_KERNELS:
            alone = statistics.median(time_cnn_steps(1, channels, kernel) for _ in range(3))
            for k in CNN_MEMBERS:
                together = statistics.median(time_cnn_steps(k, channels, kernel) for _ in range(3))
                records.append({"channels": channels, "kernel": kernel, "members": k, "alone_ms": 1e3 * alone,
                                "together_ms": 1e3 * together, "speedup": k * alone / together})
                print(f"# {channels} channels, kernel {kernel}, {k} members: {records[-1]['speedup']:.2f}x",
                      file=sys.stderr, flush=True)
    return records


def cnn_table(records: list[dict]) -> str:
    lines = ["| channels | kernel | members K | one member, ms/step | K together, ms/step | K x alone / together |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        lines.append(f"| {r['channels']} | {r['kernel']} | {r['members']} | {r['alone_ms']:.2f} | "
                     f"{r['together_ms']:.2f} | {r['speedup']:.2f}x |")
    return "\n".join(lines)


def grid_table(records: list[dict]) -> str:
    lines = ["| units | batch | network | step work (M) | 16 members vs fit | auto |", "|---:|---:|---|---:|---:|---|"]
    for r in records:
        lines.append(f"| {r['units']} | {r['batch']} | {r['kind']} | {r['work'] / 1e6:.2f} | {r['speedup']:.2f}x | "
                     f"{'population' if r['auto'] else 'alone'} |")
    return "\n".join(lines)


def table(records: list[dict]) -> str:
    lines = ["| network | method | seconds | samples/s | trials/min | x fit | share of mm peak |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in records:
        lines.append(f"| {r['network']} (batch {r['batch']}) | {r['method']} | {r['seconds']:.2f} | "
                     f"{r['samples_per_s']:,.0f} | {r['trials_per_min']:.1f} | {r['vs_fit']:.1f} | "
                     f"{100 * r['peak_share']:.1f}% |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timings per method; the median is shown")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="population sizes K")
    parser.add_argument("--auto-grid", action="store_true",
                        help="measure the speed-ups population: auto decides by (see above)")
    parser.add_argument("--cnn", action="store_true", help="measure whether 1-D CNN populations would pay")
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    import torch

    if args.auto_grid:
        print(grid_table(auto_grid(args.epochs)))
        print(f"\n4,096 x 14 (10 numeric), {args.epochs} epochs with validation, {GRID_MEMBERS} members; 1 thread; "
              f"{os.cpu_count()} vCPU {platform.machine()}, torch {torch.__version__}.")
        return 0
    if args.cnn:
        print(cnn_table(cnn_grid()))
        print(f"\nMNIST-1D shape (1 x 40, 10 classes), batch 64, 3 blocks, Adam, median of 3 x 60 steps; 1 thread; "
              f"{os.cpu_count()} vCPU {platform.machine()}, torch {torch.__version__}.")
        return 0

    records = run(args.rows, args.features, args.epochs, args.repeats, sizes)
    print(table(records))
    print(f"\n{args.rows:,} x {args.features}, {args.epochs} epochs, median of {args.repeats}; 1 thread; "
          f"{os.cpu_count()} vCPU {platform.machine()}, torch {torch.__version__}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
