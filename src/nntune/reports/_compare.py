"""Statistics and the page of `nntune compare`: several strategies, the same data, budget and
seeds, side by side: best score over time with bands over seeds, time to reach a score, and
final test scores with 95% confidence intervals."""

from __future__ import annotations

import html
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import plotly.graph_objects as go

from .._atomic import write_json, write_text
from ._figures import Figure, _attempt, export_pngs
from ._html import _fmt, page


def anytime(study: optuna.Study) -> tuple[np.ndarray, np.ndarray]:
    """(seconds since the study's first trial started, best validation score so far) at
    each complete trial, in the order they finished."""
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    starts = [t.datetime_start for t in study.get_trials(deepcopy=False) if t.datetime_start is not None]
    if not trials or not starts:
        return np.empty(0), np.empty(0)
    origin = min(starts)
    trials = sorted(trials, key=lambda t: t.datetime_complete)
    seconds = np.array([(t.datetime_complete - origin).total_seconds() for t in trials])
    values = np.array([t.value for t in trials], dtype=float)
    best = np.maximum.accumulate(values) if study.direction.name == "MAXIMIZE" else np.minimum.accumulate(values)
    return seconds, best


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student's t; 0 for one value)."""
    from scipy import stats

    array = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(array) == 0:
        return float("nan"), float("nan")
    if len(array) == 1:
        return float(array[0]), 0.0
    half = stats.t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / math.sqrt(len(array))
    return float(array.mean()), float(half)


def time_to_reach(seconds: np.ndarray, best: np.ndarray, target: float, maximize: bool) -> float | None:
    reached = best >= target if maximize else best <= target
    return float(seconds[np.argmax(reached)]) if reached.any() else None


def summarize(runs: list[dict[str, Any]], target: float | None) -> tuple[list[dict[str, Any]], float]:
    """One row per strategy. `runs`: dicts with strategy, seed, study, test_scores, metric."""
    maximize = runs[0]["study"].direction.name == "MAXIMIZE"
    curves = {id(r): anytime(r["study"]) for r in runs}
    finals = [c[1][-1] for c in curves.values() if len(c[1])]
    if target is None:  # the score every run reached: a fair finish line for all
        target = min(finals) if maximize else max(finals)
    by_strategy: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        by_strategy[run["strategy"]].append(run)
    rows = []
    metric = runs[0]["metric"]
    for strategy, group in by_strategy.items():
        times = [time_to_reach(*curves[id(r)], target, maximize) for r in group]
        reached = [t for t in times if t is not None]
        test_mean, test_half = mean_ci([r["test_scores"].get(metric) for r in group])
        val_mean, val_half = mean_ci([curves[id(r)][1][-1] if len(curves[id(r)][1]) else None for r in group])
        rows.append({"strategy": strategy, "seeds": len(group), "best_validation": val_mean,
                     "best_validation_ci": val_half, "test": test_mean, "test_ci": test_half,
                     "reached": f"{len(reached)}/{len(group)}",
                     "median_seconds_to_target": float(np.median(reached)) if reached else None,
                     "trials": float(np.mean([len(curves[id(r)][0]) for r in group]))})
    return rows, float(target)


def anytime_figure(runs: list[dict[str, Any]]) -> go.Figure:
    """Best score over time per strategy: the mean over seeds, and a band from the worst to the
    best seed, on a common time grid (a run counts from its first complete trial on)."""
    maximize = runs[0]["study"].direction.name == "MAXIMIZE"
    curves = [(r["strategy"], *anytime(r["study"])) for r in runs]
    horizon = max((s[-1] for _, s, _ in curves if len(s)), default=1.0)
    grid = np.linspace(0.0, horizon, 60)
    figure = go.Figure()
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    for i, strategy in enumerate(dict.fromkeys(r["strategy"] for r in runs)):
        stepped = []
        for name, seconds, best in curves:
            if name != strategy or not len(seconds):
                continue
            index = np.searchsorted(seconds, grid, side="right") - 1
            stepped.append(np.where(index >= 0, best[np.clip(index, 0, None)], np.nan))
        if not stepped:
            continue
        values = np.vstack(stepped)
        with np.errstate(all="ignore"):
            mean = np.nanmean(values, axis=0)
            low = np.nanmin(values, axis=0) if maximize else np.nanmax(values, axis=0)
            high = np.nanmax(values, axis=0) if maximize else np.nanmin(values, axis=0)
        color = palette[i % len(palette)]
        figure.add_trace(go.Scatter(x=np.r_[grid, grid[::-1]], y=np.r_[high, low[::-1]], fill="toself",
                                    fillcolor=color, opacity=0.15, line={"width": 0}, hoverinfo="skip",
                                    showlegend=False, name=f"{strategy} band"))
        figure.add_trace(go.Scatter(x=grid, y=mean, mode="lines", line={"color": color, "width": 2},
                                    name=f"{strategy} (mean of {len(stepped)} seeds)"))
    figure.update_layout(xaxis_title="seconds since the first trial started", yaxis_title="best validation score")
    return figure


def test_figure(runs: list[dict[str, Any]], rows: list[dict[str, Any]]) -> go.Figure:
    metric = runs[0]["metric"]
    figure = go.Figure(go.Bar(x=[r["strategy"] for r in rows], y=[r["test"] for r in rows],
                              error_y={"type": "data", "array": [r["test_ci"] for r in rows]}, name="mean"))
    figure.add_trace(go.Scatter(x=[r["strategy"] for r in runs], y=[r["test_scores"].get(metric) for r in runs],
                                mode="markers", marker={"color": "black", "size": 7}, name="one seed"))
    figure.update_layout(yaxis_title=f"test {metric}")
    return figure


def render_comparison(out_dir: str | Path, runs: list[dict[str, Any]], target: float | None = None,
                      png: str | Path | None = None) -> dict[str, Any]:
    """Write compare.html and compare.json into `out_dir` (and the figures as PNG files into
    `png`); returns the summary."""
    out_dir = Path(out_dir)
    rows, target = summarize(runs, target)
    metric = runs[0]["metric"]
    head = ("<tr><th>strategy</th><th>seeds</th><th>trials (mean)</th><th>best validation (95% CI)</th>"
            f"<th>test {html.escape(metric)} (95% CI)</th><th>reached {target:.4f}</th><th>median s to reach</th></tr>")
    body = "".join(
        f"<tr><td>{html.escape(r['strategy'])}</td><td>{r['seeds']}</td><td>{r['trials']:.1f}</td>"
        f"<td>{_fmt(r['best_validation'])} ± {r['best_validation_ci']:.4f}</td><td>{_fmt(r['test'])} ± {r['test_ci']:.4f}</td>"
        f"<td>{r['reached']}</td><td>{_fmt(r['median_seconds_to_target'])}</td></tr>" for r in rows)
    section = (f"<section><h2>Strategies side by side</h2><p class='note'>same data, split, budget and seeds; "
               f"the target score is the best validation score every run reached unless given</p>"
               f"<table>{head}{body}</table></section>")
    figures: list[Figure] = [
        _attempt("anytime", "Best validation score over time", lambda: anytime_figure(runs),
                 "mean over seeds; the band spans the worst and the best seed"),
        _attempt("test", f"Final test {metric}", lambda: test_figure(runs, rows),
                 "bars: mean with 95% confidence interval; dots: one seed each"),
    ]
    write_text(out_dir / "compare.html", page(f"comparison: {', '.join(r['strategy'] for r in rows)}",
                                               [section], figures))
    summary = {"metric": metric, "target": target, "strategies": rows,
               "runs": [{"strategy": r["strategy"], "seed": r["seed"], "run_dir": str(r["run_dir"]),
                         "test_scores": r["test_scores"]} for r in runs]}
    write_json(out_dir / "compare.json", summary)
    if png is not None:
        export_pngs(figures, png)
    return summary
