"""Compressing a tuned MLP on scikit-learn's digits: structured pruning, int8, distillation.

One command, run from the repository root (6-9 minutes on 2 vCPU, no GPU, by machine load):

    .venv/bin/python benchmarks/compression.py
    .venv/bin/python benchmarks/compression.py --trials 3 --max-epochs 10 --seeds 2   # smoke test

What it does:
  1. tunes an MLP on digits with a fixed budget: nntune.tune(dataset="digits", trials=60,
     max_epochs=150, seed=0, threads=1), 2-3 hidden layers of 128-512 units, the rest of the
     space nntune's default; nntune holds out 20% of the rows (stratified) as the test set.
  2. compresses the tuned model with each method through the public API, nntune.compress(...):
     structured pruning to at most a fifth of the parameters (the neuron share is worked out
     from the widths), unstructured pruning to 80% zeros (a reference: its file keeps its
     size), dynamic int8, and distillation into a student of the same depth with at most a
     fifth of the teacher's parameters (the widest such), over --seeds seeds.
  3. trains that student without the teacher, side by side: same width, epochs, recipe and
     seeds, hard labels only (alpha=0); and once more with the teacher's dropout (the student
     has none by default: the soft targets regularize it), so the control is not handicapped.
     Each arm as mean +- the 95% CI of the mean (t), and the paired gain of the teacher.
  4. prints one markdown table (method, params, nonzero, weight-file bytes, size ratio,
     median latency of one forward pass over the test rows on one thread, test accuracy,
     change in points) and whether each of the issue's targets is met.

Seed 0 of the two main distillation arms is the public call; the other runs call the function
it wraps (nntune.compression.compress) on the same run data with another seed, as
nntune.compress takes no seed (nor student_dropout). Every number is measured; nothing is
fixed in advance. Test rows choose nothing: the sparsity and the student width follow from
parameter counts alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

# One thread for every numeric library, set before any of them is imported: a shared 2-core
# machine, and latency is measured on one thread anyway.
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

SPACE = {"n_layers": {"type": "int", "low": 2, "high": 3},
         "units": {"type": "int", "low": 128, "high": 512, "log": True}}
MAX_SHARE = 0.2  # pruned model and student: at most a fifth of the original's parameters
MAX_DROP_POINTS = 1.5  # structured pruning may cost at most this much test accuracy
MIN_INT8_RATIO = 2.5  # the int8 weight file must be at least this many times smaller
MIN_KEPT = 0.98  # the student keeps at least this share of the teacher's test accuracy


def count_params(params: dict, meta) -> int:
    from nntune.models import build_model

    return sum(p.numel() for p in build_model("mlp", params, meta).parameters())


def pruning_share(params: dict, meta) -> float:
    """The smallest share of neurons (in hundredths) whose removal leaves at most MAX_SHARE of
    the parameters: each layer keeps round(width * (1 - share)), as structured pruning does."""
    from nntune.models.mlp import layer_widths

    widths = layer_widths(params, meta.output_dim)
    limit = MAX_SHARE * count_params(params, meta)
    for hundredths in range(1, 100):
        share = hundredths / 100
        kept = {f"units_{i}": max(1, round(w * (1 - share))) for i, w in enumerate(widths)}
        if count_params({**params, **kept}, meta) <= limit:
            return share
    raise SystemExit("no neuron share leaves a fifth of the parameters")


def student_width(params: dict, meta) -> int:
    """The widest student of the teacher's depth with at most MAX_SHARE of its parameters."""
    limit = MAX_SHARE * count_params(params, meta)
    plain = {k: v for k, v in params.items() if not k.startswith("units_")}
    width = 1
    while count_params({**plain, "units": width + 1}, meta) <= limit:
        width += 1
    return width


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student's t)."""
    from scipy import stats

    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def distill_seeds(run_dir: Path, run, out: Path, name: str, seeds: int, **options) -> list[dict]:
    """One distillation per seed: seed 0 through nntune.compress, the others (and any run with
    `student_dropout`, which nntune.compress does not take yet) through the function it wraps,
    on the same run data with the run's seed moved on (nntune.compress takes no seed)."""
    import nntune
    from nntune.compression import compress as compress_run

    summaries = []
    for seed in range(seeds):
        if seed == 0 and "student_dropout" not in options:
            summaries.append(nntune.compress(run_dir, "distill", out / f"{name}-0", **options))
        else:
            summaries.append(compress_run(dataclasses.replace(run, seed=run.seed + seed), "distill",
                                          out / f"{name}-{seed}", **options))
    return summaries


def row(label: str, side: dict, original: dict, score: float | None = None, spread: float | None = None,
        target: str = "", met: bool | None = None) -> str:
    """One table row; `score` and `spread` (a CI half-width) replace the side's own score."""
    ratio = original["size_bytes"] / side["size_bytes"]
    score = side["score"] if score is None else score
    accuracy = f"{score:.4f}" if spread is None else f"{score:.4f} ± {spread:.4f}"
    verdict = "" if met is None else ("yes" if met else "**no**")
    return (f"| {label} | {side['params']:,} | {side['nonzero']:,} | {side['size_bytes']:,} | {ratio:.2f}x | "
            f"{side['latency_ms']:.3f} | {accuracy} | {100 * (score - original['score']):+.2f} | {target} | "
            f"{verdict} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--max-epochs", type=int, default=150)
    parser.add_argument("--seeds", type=int, default=10, help="distillation seeds per arm")
    parser.add_argument("--prune-steps", type=int, default=4)
    parser.add_argument("--finetune-epochs", type=int, default=10, help="after each pruning step")
    parser.add_argument("--run", type=Path, help="keep the run here (default: a temporary directory)")
    parser.add_argument("--json", type=Path, help="also write every summary to this file")
    args = parser.parse_args()

    import torch

    import nntune
    from nntune.api import _run_arrays
    from nntune.compression import RunData
    from nntune.models import ModelMeta

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run or Path(tmp) / "digits"
        started = time.monotonic()
        result = nntune.tune(dataset="digits", trials=args.trials, max_epochs=args.max_epochs, space=SPACE,
                             seed=0, threads=1, out=run_dir, report=False)
        tuned = time.monotonic() - started
        params, info = result.best_params, result.model.info
        meta = ModelMeta(int(info["input_dim"]), result.model.head.output_dim, result.model.task)
        full = {**info["params"]}
        share, width = pruning_share(full, meta), student_width(full, meta)

        out = run_dir / "compressed"
        pruned = nntune.compress(run_dir, "prune", out / "pruned", sparsity=share, structured=True,
                                 steps=args.prune_steps, finetune_epochs=args.finetune_epochs)
        sparse = nntune.compress(run_dir, "prune", out / "sparse", sparsity=0.8, steps=args.prune_steps,
                                 finetune_epochs=args.finetune_epochs)
        int8 = nntune.compress(run_dir, "quantize", out / "int8")
        # The run's model and rows, read as nntune.compress reads them.
        run = RunData(**_run_arrays(run_dir, None, None, "compress"))
        students = distill_seeds(run_dir, run, out, "student", args.seeds, student_units=width)
        alone = distill_seeds(run_dir, run, out, "no-teacher", args.seeds, student_units=width, alpha=0.0)
        # The control once more with the teacher's dropout: is the default student (no
        # dropout, the soft targets regularize it) a handicap for the no-teacher arm?
        alone_dropout = distill_seeds(run_dir, run, out, "no-teacher-dropout", args.seeds, student_units=width,
                                      alpha=0.0, student_dropout=float(params.get("dropout", 0.0)))
        seconds = time.monotonic() - started

    original = pruned["original"]
    acc = original["score"]
    kept_params = pruned["compressed"]["params"] / original["params"]
    drop = 100 * (acc - pruned["compressed"]["score"])
    ratio = original["size_bytes"] / int8["compressed"]["size_bytes"]
    student_acc = [s["compressed"]["score"] for s in students]
    alone_acc = [s["compressed"]["score"] for s in alone]
    gains = [a - b for a, b in zip(student_acc, alone_acc, strict=True)]
    (s_mean, s_ci), (a_mean, a_ci), (g_mean, g_ci) = mean_ci(student_acc), mean_ci(alone_acc), mean_ci(gains)
    d_mean, d_ci = mean_ci([s["compressed"]["score"] for s in alone_dropout])
    student_share = students[0]["compressed"]["params"] / original["params"]
    n = len(students)
    widths = pruned["details"]["widths_after"]

    lines = [
        f"Tuned MLP: {params['n_layers']} hidden layers of {params['units']}, norm {params['norm']}, "
        f"{params['activation']}, {params['optimizer']} lr {params['lr']:.3g}, batch {params['batch_size']}, "
        f"{info['epochs']} epochs; test accuracy {acc:.4f} on {len(run.y_test)} rows.",
        "",
        "| method | params | nonzero | file bytes | size ratio | latency ms | test accuracy | Δ points | target | met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
        row("original (tuned)", original, original),
        row(f"prune --structured --sparsity {share:.2f} (widths {widths})", pruned["compressed"], original,
            target=f"≤ {MAX_SHARE:.0%} params ({kept_params:.1%}), drop ≤ {MAX_DROP_POINTS} pt ({drop:.2f})",
            met=kept_params <= MAX_SHARE and drop <= MAX_DROP_POINTS),
        row("prune --sparsity 0.8 (unstructured, reference)", sparse["compressed"], original),
        row("quantize (dynamic int8)", int8["compressed"], original,
            target=f"file ≥ {MIN_INT8_RATIO}x smaller ({ratio:.2f}x)", met=ratio >= MIN_INT8_RATIO),
        row(f"distill --student-units {width} (seed 0)", students[0]["compressed"], original),
        row(f"distill, {n} seeds", students[0]["compressed"], original, s_mean, s_ci,
            target=f"≤ {MAX_SHARE:.0%} params ({student_share:.1%}), ≥ {MIN_KEPT:.0%} of teacher "
                   f"({s_mean / acc:.1%}), beats no teacher ({100 * g_mean:+.2f} ± {100 * g_ci:.2f} pt)",
            met=student_share <= MAX_SHARE and s_mean >= MIN_KEPT * acc and s_mean > a_mean),
        row(f"same student, no teacher (alpha 0), {n} seeds", alone[0]["compressed"], original, a_mean, a_ci),
        row(f"same, no teacher, the teacher's dropout {params.get('dropout', 0.0):.2f}, {n} seeds",
            alone_dropout[0]["compressed"], original, d_mean, d_ci),
        "",
        "Rows over seeds: mean test accuracy ± the 95% CI of the mean (t), Δ points of the mean. "
        f"Tuning {tuned:.0f} s, everything {seconds:.0f} s.",
    ]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"best_params": params, "pruned": pruned, "sparse": sparse, "int8": int8,
                                         "students": students, "no_teacher": alone, "no_teacher_dropout": alone_dropout,
                                         "seconds": seconds},
                                        default=str, indent=1))


if __name__ == "__main__":
    main()
