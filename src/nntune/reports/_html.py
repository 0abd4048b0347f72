"""`nntune report`: one self-contained HTML file that explains a run.

plotly's JavaScript is embedded once (no network fetch when the file is opened); each figure is
a plotly div. The final model's diagnostics and the baselines need the run's data again: it is
read from the reference stored with the study (checked by its checksum), or passed in.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from .._atomic import write_text
from ..data import encode_split, transform
from ..errors import NntuneError
from ..execution import final_epochs, pick_device, plan_of_study, train_final
from ..predictor import load
from ..search import best_trial, get_storage
from ..training import score_all
from ._figures import (
    Figure,
    _attempt,
    classification_figures,
    depth_figure,
    export_pngs,
    regression_figures,
    study_figures,
    training_curves,
)
from ._tables import ensemble_text, failures_text, read_run, top_trials

BASELINE_SHARE = 0.1  # baselines run by default when they cost under this share of the run
DEPTH_NOTE = ("each depth's best trial in a brief search of its own (studies '{study}.depth<d>'), ± one "
              "standard error over its folds. A deeper network had to beat the shallower one by more than that "
              "error; the star marks the depth kept, which the study below tuned")


def render_report(run_dir: str | Path, out: str | Path | None = None, data: Any = None, y: Any = None,
                  baselines: bool | None = None, png: str | Path | None = None, model: Any = None) -> Path:
    """Write the run's report (default `<run_dir>/report.html`) and return its path; with
    `png`, each figure also as a PNG file in that directory. `model`: the run's Predictor when
    the caller holds it (a custom build_model cannot be reloaded without its function)."""
    run_dir = Path(run_dir)
    result = read_run(run_dir)
    study = optuna.load_study(study_name=result["study"], storage=get_storage(result["storage"]))
    attrs = study.user_attrs
    sections = [_summary(result, attrs), _best(result, study)]
    names = result.get("objectives") or [result["metric"]]
    figures = study_figures(study, names)
    numbered = {t.number: t for t in study.get_trials(deepcopy=False)}
    best = numbered.get(result.get("best_trial")) or best_trial(study)
    curves = best.user_attrs.get("curves") if best is not None else None
    figures.append(_attempt("training", f"Best trial's training curves (trial {best.number if best else '-'})",
                            lambda: training_curves(curves or {})))
    depth_curve = result.get("depth_curve") or attrs.get("depth_curve")
    if depth_curve:  # strategy "depth": shown first, as the depth was chosen before the main study ran
        figures.insert(0, _attempt("depth", "Depth search: CV score by number of hidden layers",
                                   lambda: depth_figure(depth_curve, result["metric"]),
                                   DEPTH_NOTE.format(study=result["study"])))
    evaluation = _evaluate(run_dir, attrs, data, y, model)
    if evaluation is None:
        sections.append(_note("Final model on the test rows", "not shown: the run's data or model is not "
                              "available here (in-memory data: pass it to nntune.report(run, data=...); a custom "
                              "build_model: load the model with it)"))
    else:
        plan, model, y_test, scores = evaluation
        if plan.table.task == "regression":
            figures += regression_figures(y_test, scores)
        else:
            figures += classification_figures(y_test, scores, plan.table.classes)
        if baselines is None:
            baselines = _baseline_cost(study, plan) < BASELINE_SHARE * float(result.get("seconds") or 0)
        if baselines:
            sections.insert(1, _baselines(result, study, plan))
    target = Path(out) if out is not None else run_dir / "report.html"
    write_text(target, page(result["study"], sections, figures, result.get("nntune_version", "")))
    if png is not None:
        export_pngs(figures, png)
    return target


def _evaluate(run_dir: Path, attrs: dict, data: Any, y: Any, model: Any = None):
    """(plan, model, y_test, scores) of the saved model on the run's test rows, or None."""
    try:
        plan = plan_of_study(attrs, data, y)
        model = model if model is not None else load(run_dir / "model")
    except NntuneError:
        return None
    rows = plan.test_rows
    table = plan.table
    features = table.features.iloc[rows] if hasattr(table.features, "iloc") else table.features[rows]
    y_test = plan.table.y[rows]
    scores = model.predict(features) if plan.table.task == "regression" else model.predict_proba(features)
    return plan, model, np.asarray(y_test), np.asarray(scores)


def _baseline_cost(study: optuna.Study, plan) -> float:
    """Seconds the baselines will take: the default network is about one trial's training
    on all training rows; gradient boosting about a second per 10,000 rows."""
    default = _default_trial(study)
    seconds = default.user_attrs.get("train_seconds", 5.0) if default is not None else 5.0
    return 1.5 * seconds + 1.0 + len(plan.train_rows) / 10_000


def _default_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The first starting point the study tried (a queued trial: Adam at 1e-3, 2 x 128 by default)."""
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if "fixed_params" in trial.system_attrs and "failed_trial" not in trial.system_attrs:
            return trial
    return None


def _baselines(result: dict, study: optuna.Study, plan) -> str:
    """Test scores of the untuned starting network and of untuned gradient boosting on the
    same split, next to the tuned network's."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    metric = result["metric"]
    rows = [("tuned network (this run)", result["test_scores"].get(metric), "")]
    default = _default_trial(study)
    if default is not None:
        started = time.monotonic()
        params = {**plan.fixed, **default.params}
        max_epochs = int(params["max_epochs"])
        scores = train_final(plan.table, plan.train_rows, plan.test_rows, params, final_epochs(default, max_epochs),
                             plan.model, pick_device("cpu"), plan.cfg.seed, None, plan.pretrained,
                             horizon=max_epochs).test_scores
        rows.append((f"default network (trial {default.number}'s recipe, untuned)", scores.get(metric),
                     f"{time.monotonic() - started:.1f} s"))
    table = plan.table
    # Boosted trees on the encoded samples (flattened pixels, signal values, window values); token
    # ids and node numbers are not features a tree could use, so texts and graphs go without.
    if getattr(table, "kind", "table") not in ("text", "graph"):
        started = time.monotonic()
        split = encode_split(table, plan.train_rows, None)
        booster = (HistGradientBoostingRegressor if table.task == "regression" else HistGradientBoostingClassifier)(
            random_state=plan.cfg.seed)
        booster.fit(split.X_train.reshape(len(split.X_train), -1), split.y_train)
        X_test = transform(split.preprocessor, table.features, plan.test_rows)
        X_test = X_test.reshape(len(X_test), -1)
        raw = booster.predict(X_test) if table.task == "regression" else booster.predict_proba(X_test)
        scores = score_all(table.task, table.y[plan.test_rows], np.asarray(raw, dtype=np.float64))
        rows.append(("HistGradientBoosting (scikit-learn defaults)", scores.get(metric),
                     f"{time.monotonic() - started:.1f} s"))
    body = "".join(f"<tr><td>{html.escape(name)}</td><td>{_fmt(score)}</td><td>{cost}</td></tr>"
                   for name, score, cost in rows)
    return (f"<section><h2>What tuning bought</h2><p>Test {html.escape(metric)} on the same held-out rows, "
            f"each model trained on the same training rows.</p><table><tr><th>model</th><th>test {metric}</th>"
            f"<th>training time</th></tr>{body}</table></section>")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value)) if value is not None else "-"


def _note(title: str, text: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2><p class='note'>{html.escape(text)}</p></section>"


def _table(rows: list[tuple[str, Any]]) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in rows) + "</table>"


def _summary(result: dict, attrs: dict) -> str:
    cfg = attrs.get("config", {})
    search = cfg.get("search", {})
    execution = cfg.get("execution", {})
    data = result.get("data", {})
    std = result.get("best_std")
    best = _fmt(result["best_value"]) + (f" ± {std:.4f} over folds" if std is not None else "")
    balance = ", ".join(f"{k}: {v}" for k, v in (data.get("classes") or {}).items())
    run = attrs.get("run") or {}
    rows = [
        ("data", f"{data.get('name', '-')}: {data.get('rows', '-')} rows, {data.get('features', '-')} features"
         if "kind" not in data else
         f"{data.get('name', '-')}: {data.get('rows', '-')} {data['kind']} samples of shape {data.get('sample_shape')}"),
        ("task", f"{data.get('task', '-')} (target {data.get('target', '-')})"),
        ("class balance", balance or "-"),
        ("budget", f"{search.get('trials') or '-'} trials, timeout {run.get('timeout') or search.get('timeout') or 'none'}"),
        ("time used", f"{result.get('seconds', 0):.1f} s"),
        ("strategy / pruner", f"{search.get('strategy', '-')} / {search.get('pruner', '-')}"),
        ("validation", f"{search.get('cv')}-fold cross-validation" if search.get("cv") else "one validation split"),
        ("workers", f"{execution.get('workers', 1)} ({execution.get('backend', 'local')})"),
        ("trials", ", ".join(f"{n} {s}" for s, n in result["n_trials"].items())),
        *([("delivered model", ensemble_text(result))] if result.get("ensemble") else []),
        *([("failed", failures_text(result["failed"]))] if result.get("failed") else []),
        *[("warning", w) for w in result.get("warnings") or []],
        (f"best validation {result['metric']}", best),
    ]
    rows += [(f"test {k}", v) for k, v in result["test_scores"].items()]
    return f"<section><h2>Summary</h2>{_table(rows)}</section>"


def _best(result: dict, study: optuna.Study) -> str:
    params = _table(sorted(result["best_params"].items()))
    trials = [{"number": t.number, "state": t.state.name.lower(), "value": t.values[0] if t.values else None,
               "params": t.params,
               "val_loss": t.user_attrs.get("val_loss"), "train_seconds": t.user_attrs.get("train_seconds")}
              for t in study.get_trials(deepcopy=False)]
    top = top_trials(trials, result["direction"])
    names = sorted({k for t in top for k in t["params"]})
    head = "".join(f"<th>{html.escape(n)}</th>" for n in ["trial", result["metric"], "seconds", *names])
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in
                                     [t["number"], t["value"], t["train_seconds"], *[t["params"].get(n) for n in names]])
                   + "</tr>" for t in top)
    front = result.get("pareto_front") or []
    pareto = ""
    if front:
        names = list(front[0]["values"])
        rows = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in [t["number"], *t["values"].values()]) + "</tr>"
                       for t in front)
        pareto = (f"<section><h2>Pareto front ({len(front)} trials)</h2><p class='note'>no other trial is better on "
                  f"every objective; the model is trial {result.get('best_trial', '-')}, picked by the rule '{html.escape(str(study.user_attrs.get('config', {}).get('search', {}).get('pick', 'first')))}'</p><table><tr><th>trial</th>"
                  + "".join(f"<th>{html.escape(n)}</th>" for n in names) + f"</tr>{rows}</table></section>")
    return (pareto + f"<section><h2>Best configuration</h2>{params}</section>"
            f"<section><h2>Top {len(top)} trials</h2><div class='wide'><table><tr>{head}</tr>{body}</table></div></section>")


def page(title: str, sections: list[str], figures: list[Figure], version: str = "") -> str:
    """A whole self-contained HTML page: plotly's JavaScript embedded once, then the sections
    and one plotly div per figure (or its note when the figure could not be drawn)."""
    from plotly.offline import get_plotlyjs

    from .. import __version__

    blocks = []
    for figure in figures:
        heading = f"<h2>{html.escape(figure.title)}</h2>"
        note = f"<p class='note'>{html.escape(figure.note)}</p>" if figure.note else ""
        if figure.figure is None:
            blocks.append(f"<section class='figure missing' data-key='{figure.key}'>{heading}{note}</section>")
            continue
        div = figure.figure.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{figure.key}",
                                    config={"displaylogo": False, "responsive": True})
        blocks.append(f"<section class='figure' data-key='{figure.key}'>{heading}{note}{div}</section>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>nntune report: {html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: .5rem 0; }} td, th {{ border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; }}
th {{ background: #f5f5f5; }} .note {{ color: #666; font-size: .9rem; }} .wide {{ overflow-x: auto; }}
section {{ margin-bottom: 2rem; }}
</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>nntune report: {html.escape(title)}</h1>
<p class="note">written {time.strftime('%Y-%m-%d %H:%M')} by nntune {html.escape(str(version or __version__))}</p>
{''.join(sections)}
{''.join(blocks)}
</body></html>
"""
