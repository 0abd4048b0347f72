"""The page of `nntune ablate`: each technique's effect on the score and on training time,
with 95% confidence intervals over the same seeds and folds."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .._atomic import write_json, write_text
from ..execution._ablate import FAILURE_SCORE, Ablated, paired_effect
from ._figures import Figure, _attempt, export_pngs
from ._html import _fmt, page


def summarize(base: Ablated, rows: list[Ablated], direction: str) -> list[dict[str, Any]]:
    """One entry per technique. `score_effect` is the change in the validation score when the
    technique is switched off (negative: the technique helped, for a metric to maximize); a fit
    that broke counts in it at the worst score of its seed and fold (see FAILURE_SCORE)."""
    out = []
    for row in rows:
        if not row.applicable:
            out.append({"technique": row.technique, "applicable": False, "what": row.what})
            continue
        effect, half, pairs = paired_effect(base.scores, row.scores)
        time_effect, time_half, _ = paired_effect(base.seconds, row.seconds)
        out.append({"technique": row.technique, "applicable": True, "what": row.what, "changes": row.changes,
                    "score": float(np.nanmean(row.scores)), "score_effect": effect, "score_effect_ci": half,
                    "seconds_effect": time_effect, "seconds_effect_ci": time_half, "pairs": pairs,
                    "verdict": verdict(base, row, effect, half, direction), "fits": len(row.scores),
                    "failed": row.failed, "failures": sorted({r for r in row.failures if r is not None})})
    return out


def verdict(base: Ablated, row: Ablated, effect: float, half: float, direction: str) -> str | None:
    """Fits that break without the technique (more than with it) are its clearest effect: it
    helps; more broken fits with it, it hurts. Otherwise the confidence interval decides."""
    n = len(row.scores)
    if row.failed > base.failed:
        with_it = f" (with it in {base.failed})" if base.failed else ""
        return f"helps: without it training breaks in {row.failed} of {n} fits{with_it}"
    if base.failed > row.failed:
        return f"hurts: with it training breaks in {base.failed} of {n} fits (without it in {row.failed})"
    if math.isnan(half):
        return None
    worse = effect < -half if direction == "maximize" else effect > half
    better = effect > half if direction == "maximize" else effect < -half
    return "helps" if worse else "hurts" if better else "no clear effect"


def effect_figure(summary: list[dict[str, Any]], metric: str) -> go.Figure:
    rows = [r for r in summary if r["applicable"]]
    if not rows:
        raise ValueError("no technique of the list is in this configuration")
    names = [r["technique"] for r in rows]
    # A technique whose removal breaks fits says so on its bar: the bar alone reads as a size.
    broke = [f"breaks {r['failed']} of {r['fits']}" if r["failed"] else "" for r in rows]
    figure = make_subplots(rows=1, cols=2, subplot_titles=(f"change in validation {metric}", "change in training seconds"))
    figure.add_trace(go.Bar(x=[r["score_effect"] for r in rows], y=names, orientation="h", name=metric,
                            text=broke, textposition="auto",
                            error_x={"type": "data", "array": [r["score_effect_ci"] for r in rows]}), 1, 1)
    figure.add_trace(go.Bar(x=[r["seconds_effect"] for r in rows], y=names, orientation="h", name="seconds",
                            error_x={"type": "data", "array": [r["seconds_effect_ci"] for r in rows]}), 1, 2)
    figure.update_layout(showlegend=False)
    return figure


def _row_html(r: dict[str, Any]) -> str:
    name = html.escape(r["technique"])
    if not r["applicable"]:
        return f"<tr><td>{name}</td><td colspan='5'>not applicable: {html.escape(r['what'])}</td></tr>"
    score = _fmt(r["score"])
    if r["failed"]:  # the score holds broken fits at the worst score: say how many, and why
        score += f" ({r['failed']} of {r['fits']} fits broke: {html.escape('; '.join(r['failures']))})"
    return (f"<tr><td>{name}</td><td>{html.escape(r['what'])}</td><td>{score}</td>"
            f"<td>{_fmt_effect(r['score_effect'], r['score_effect_ci'], 4)}</td>"
            f"<td>{_fmt_effect(r['seconds_effect'], r['seconds_effect_ci'], 2)}</td>"
            f"<td>{html.escape(str(r['verdict']))}</td></tr>")


def _fmt_effect(effect: float, half: float, digits: int) -> str:
    ci = "" if math.isnan(half) else f" ± {half:.{digits}f}"
    return f"{effect:+.{digits}f}{ci}"


def _table_html(summary: list[dict[str, Any]], base: Ablated, metric: str, seeds: list[int], folds: int) -> str:
    broken = (f"; the tuned configuration itself broke in {base.failed} of {len(base.scores)} fits "
              f"({html.escape('; '.join(sorted({r for r in base.failures if r})))})" if base.failed else "")
    return (f"<section><h2>Each technique switched off</h2><p class='note'>validation {html.escape(metric)} of the "
            f"tuned configuration: {np.nanmean(base.scores):.4f} (mean of {len(seeds)} seeds x {folds} folds{broken}); "
            f"effects are paired differences with 95% confidence intervals; {html.escape(FAILURE_SCORE)}</p>"
            "<table><tr><th>technique</th><th>switched off as</th><th>score without it</th><th>change in score</th>"
            f"<th>change in seconds per fit</th><th>verdict</th></tr>{''.join(map(_row_html, summary))}</table></section>")


def render_ablation(out: str | Path, study_name: str, metric: str, direction: str, base: Ablated,
                    rows: list[Ablated], seeds: list[int], folds: int, png: str | Path | None = None) -> dict[str, Any]:
    """Write the page (HTML), its numbers (JSON beside it) and with `png` its figure as a PNG
    file in that directory; returns the numbers."""
    out = Path(out)
    summary = summarize(base, rows, direction)
    figures: list[Figure] = [_attempt("effects", "Effect of switching each technique off",
                                      lambda: effect_figure(summary, metric),
                                      "bars: mean paired difference; whiskers: 95% confidence interval")]
    write_text(out, page(f"ablation of {study_name}", [_table_html(summary, base, metric, seeds, folds)], figures))
    numbers = {"study": study_name, "metric": metric, "direction": direction, "seeds": seeds, "folds": folds,
               "base_score": float(np.nanmean(base.scores)), "base_failed": base.failed,
               "base_failures": sorted({r for r in base.failures if r is not None}),
               "failure_score": FAILURE_SCORE, "techniques": summary}
    write_json(out.with_suffix(".json"), numbers)
    if png is not None:
        export_pngs(figures, png)
    return numbers
