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
from ..execution._ablate import Ablated, paired_effect
from ._figures import Figure, _attempt, export_pngs
from ._html import _fmt, page


def summarize(base: Ablated, rows: list[Ablated], direction: str) -> list[dict[str, Any]]:
    """One entry per technique. `score_effect` is the change in the validation score when the
    technique is switched off (negative: the technique helped, for a metric to maximize)."""
    out = []
    for row in rows:
        if not row.applicable:
            out.append({"technique": row.technique, "applicable": False, "what": row.what})
            continue
        effect, half, pairs = paired_effect(base.scores, row.scores)
        time_effect, time_half, _ = paired_effect(base.seconds, row.seconds)
        helps = None
        diverged = sum(math.isnan(v) for v in row.scores) - sum(math.isnan(v) for v in base.scores)
        if diverged > 0:  # fits that fail without the technique are its clearest effect
            helps = f"helps: without it {diverged} of {len(row.scores)} fits diverged"
        elif not math.isnan(half):
            worse = effect < -half if direction == "maximize" else effect > half
            better = effect > half if direction == "maximize" else effect < -half
            helps = "helps" if worse else "hurts" if better else "no clear effect"
        out.append({"technique": row.technique, "applicable": True, "what": row.what, "changes": row.changes,
                    "score": float(np.nanmean(row.scores)), "score_effect": effect, "score_effect_ci": half,
                    "seconds_effect": time_effect, "seconds_effect_ci": time_half, "pairs": pairs,
                    "verdict": helps, "diverged": int(sum(math.isnan(s) for s in row.scores))})
    return out


def effect_figure(summary: list[dict[str, Any]], metric: str) -> go.Figure:
    rows = [r for r in summary if r["applicable"]]
    if not rows:
        raise ValueError("no technique of the list is in this configuration")
    names = [r["technique"] for r in rows]
    figure = make_subplots(rows=1, cols=2, subplot_titles=(f"change in validation {metric}", "change in training seconds"))
    figure.add_trace(go.Bar(x=[r["score_effect"] for r in rows], y=names, orientation="h", name=metric,
                            error_x={"type": "data", "array": [r["score_effect_ci"] for r in rows]}), 1, 1)
    figure.add_trace(go.Bar(x=[r["seconds_effect"] for r in rows], y=names, orientation="h", name="seconds",
                            error_x={"type": "data", "array": [r["seconds_effect_ci"] for r in rows]}), 1, 2)
    figure.update_layout(showlegend=False)
    return figure


def render_ablation(out: str | Path, study_name: str, metric: str, direction: str, base: Ablated,
                    rows: list[Ablated], seeds: list[int], folds: int, png: str | Path | None = None) -> dict[str, Any]:
    """Write the page (HTML), its numbers (JSON beside it) and with `png` its figure as a PNG
    file in that directory; returns the numbers."""
    out = Path(out)
    summary = summarize(base, rows, direction)
    body = []
    for r in summary:
        if not r["applicable"]:
            body.append(f"<tr><td>{html.escape(r['technique'])}</td><td colspan='5'>not applicable: "
                        f"{html.escape(r['what'])}</td></tr>")
            continue
        body.append(f"<tr><td>{html.escape(r['technique'])}</td><td>{html.escape(r['what'])}</td><td>{_fmt(r['score'])}</td>"
                    f"<td>{r['score_effect']:+.4f} ± {r['score_effect_ci']:.4f}</td>"
                    f"<td>{r['seconds_effect']:+.2f} ± {r['seconds_effect_ci']:.2f}</td><td>{html.escape(str(r['verdict']))}</td></tr>")
    table = (f"<section><h2>Each technique switched off</h2><p class='note'>validation {html.escape(metric)} of the "
             f"tuned configuration: {np.nanmean(base.scores):.4f} (mean of {len(seeds)} seeds x {folds} folds); "
             "effects are paired differences with 95% confidence intervals</p><table><tr><th>technique</th>"
             "<th>switched off as</th><th>score without it</th><th>change in score</th><th>change in seconds per fit</th>"
             f"<th>verdict</th></tr>{''.join(body)}</table></section>")
    figures: list[Figure] = [_attempt("effects", "Effect of switching each technique off",
                                      lambda: effect_figure(summary, metric),
                                      "bars: mean paired difference; whiskers: 95% confidence interval")]
    write_text(out, page(f"ablation of {study_name}", [table], figures))
    numbers = {"study": study_name, "metric": metric, "direction": direction, "seeds": seeds, "folds": folds,
               "base_score": float(np.nanmean(base.scores)), "techniques": summary}
    write_json(out.with_suffix(".json"), numbers)
    if png is not None:
        export_pngs(figures, png)
    return numbers
