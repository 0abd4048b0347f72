"""The report's figures: Optuna's own plots of the study where Optuna has them, plotly for the
rest (learning curves with pruned trials marked, the final model's diagnostics)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import plotly.graph_objects as go

from .._places import FIGURES_MARKER, claim_figures
from ..errors import ConfigError

TrialState = optuna.trial.TrialState
MAX_CURVE_CLASSES = 10  # one-vs-rest ROC/PR curves beyond this many classes are unreadable


@dataclass
class Figure:
    key: str
    title: str
    figure: go.Figure | None
    note: str = ""  # why the figure is missing, or how to read it


def _attempt(key: str, title: str, make: Callable[[], go.Figure], note: str = "") -> Figure:
    """A figure, or an explanation instead of it (too few trials, a constant parameter, ...)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            figure = make()
    except Exception as exc:  # Optuna raises for studies a plot cannot describe
        return Figure(key, title, None, f"not shown: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    figure.update_layout(title=None, margin={"l": 50, "r": 20, "t": 30, "b": 50}, height=420)
    return Figure(key, title, figure, note)


def important_params(study: optuna.Study, n: int = 4,
                     target: Callable | None = None) -> tuple[list[str], dict[str, float]]:
    """The `n` most important parameters (PED-ANOVA, fast and robust with few trials)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    searched = sorted({p for t in complete for p in t.params})
    if len(complete) < 3 or not searched:
        return searched[:n], {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), target=target)
    except Exception:
        return searched[:n], {}
    return list(importances)[:n], dict(importances)


def study_figures(study: optuna.Study, names: list[str] | None = None) -> list[Figure]:
    """The study's figures. With several objectives, the single-objective plots show the
    first (the metric) and a Pareto front shows them all."""
    vis = optuna.visualization
    multi = len(study.directions) > 1
    names = names or ["objective"]
    # Optuna's plots take `target` (with its name) for a multi-objective study.
    target = {"target": lambda t: t.values[0], "target_name": names[0]} if multi else {}
    top, importances = important_params(study, target=target.get("target"))
    figures = [
        _attempt("history", "Optimization history", lambda: vis.plot_optimization_history(study, **target),
                 "each dot a complete trial; the line is the best so far"),
        _attempt("importance", "Hyperparameter importance (PED-ANOVA)",
                 lambda: vis.plot_param_importances(
                     study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), **target),
                 "how much of the spread between good and all trials each parameter explains"),
        _attempt("parallel", "Parallel coordinates (most important parameters)",
                 lambda: vis.plot_parallel_coordinate(study, params=top or None, **target)),
        _attempt("slice", "Slices of the most important parameters",
                 lambda: vis.plot_slice(study, params=top or None, **target)),
        _attempt("curves", "Learning curves of all trials", lambda: learning_curves(study),
                 "validation score per epoch (first fold); pruned trials dashed red, the best thick"),
        _attempt("timeline", "Timeline of trials", lambda: vis.plot_timeline(study),
                 "when each trial ran, and on which state it ended"),
    ]
    if multi:
        figures.append(_attempt("pareto", "Pareto front", lambda: vis.plot_pareto_front(study, target_names=names),
                                "every complete trial; the Pareto-optimal ones highlighted"))
    if not importances:
        figures[1].note = figures[1].note or "needs at least 3 complete trials"
    return figures


def learning_curves(study: optuna.Study) -> go.Figure:
    trials = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values]
    if not trials:
        raise ValueError("no trial reported per-epoch scores (Optuna keeps none for several objectives; "
                         "see the best trial's training curves)")
    try:
        best = study.best_trial.number
    except (ValueError, RuntimeError):
        best = None
    figure = go.Figure()
    for trial in trials:
        # With k folds, fold i reports at steps i*stride+epoch: the first fold's are below stride.
        stride = trial.user_attrs.get("fold_stride", float("inf"))
        steps = sorted(s for s in trial.intermediate_values if s < stride)
        pruned = trial.state == TrialState.PRUNED
        style = {"color": "#d62728", "dash": "dash", "width": 1} if pruned else {"color": "#7f7f7f", "width": 1}
        if trial.number == best:
            style = {"color": "#1f77b4", "width": 4}
        figure.add_trace(go.Scatter(
            x=steps, y=[trial.intermediate_values[s] for s in steps], mode="lines", line=style,
            name=f"trial {trial.number} ({trial.state.name.lower()})", opacity=1.0 if trial.number == best else 0.6))
    figure.update_layout(xaxis_title="epoch", yaxis_title="validation score", showlegend=len(trials) <= 20)
    return figure


def training_curves(curves: dict[str, list[float]]) -> go.Figure:
    """The best trial's training and validation loss (and score) per epoch."""
    if not curves or not curves.get("train_loss"):
        raise ValueError("the best trial recorded no curves")
    figure = go.Figure()
    epochs = list(range(1, len(curves["train_loss"]) + 1))
    for key, name in (("train_loss", "training loss"), ("val_loss", "validation loss")):
        if curves.get(key):
            figure.add_trace(go.Scatter(x=epochs, y=curves[key], mode="lines", name=name))
    if curves.get("val_score"):
        figure.add_trace(go.Scatter(x=epochs, y=curves["val_score"], mode="lines", name="validation score",
                                    yaxis="y2", line={"dash": "dot"}))
        figure.update_layout(yaxis2={"overlaying": "y", "side": "right", "title": "score"})
    figure.update_layout(xaxis_title="epoch", yaxis_title="loss")
    return figure


def classification_figures(y: np.ndarray, proba: np.ndarray, classes: list[Any]) -> list[Figure]:
    from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

    names = [str(c) for c in classes]
    predicted = proba.argmax(axis=1)
    matrix = confusion_matrix(y, predicted, labels=list(range(len(classes))))

    def confusion() -> go.Figure:
        figure = go.Figure(go.Heatmap(z=matrix, x=names, y=names, colorscale="Blues", text=matrix,
                                      texttemplate="%{text}", hovertemplate="true %{y}, predicted %{x}: %{z}"))
        figure.update_layout(xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed")
        return figure

    shown = [1] if len(classes) == 2 else list(range(min(len(classes), MAX_CURVE_CLASSES)))

    def curve(kind: str) -> go.Figure:
        figure = go.Figure()
        for k in shown:
            truth = (y == k).astype(int)
            if truth.min() == truth.max():
                continue  # a class absent from the test rows has no curve
            if kind == "roc":
                x, y_, _ = roc_curve(truth, proba[:, k])
            else:
                y_, x, _ = precision_recall_curve(truth, proba[:, k])
            label = names[k] if len(classes) > 2 else f"positive class {names[k]}"
            figure.add_trace(go.Scatter(x=x, y=y_, mode="lines", name=label))
        if kind == "roc":
            figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "gray"},
                                        name="chance"))
            figure.update_layout(xaxis_title="false positive rate", yaxis_title="true positive rate")
        else:
            figure.update_layout(xaxis_title="recall", yaxis_title="precision")
        return figure

    note = "" if len(classes) <= MAX_CURVE_CLASSES else f"first {MAX_CURVE_CLASSES} classes, one against the rest"
    return [_attempt("confusion", "Confusion matrix (test rows)", confusion),
            _attempt("roc", "ROC curve (test rows)", lambda: curve("roc"), note),
            _attempt("pr", "Precision-recall curve (test rows)", lambda: curve("pr"), note)]


def regression_figures(y: np.ndarray, predicted: np.ndarray) -> list[Figure]:
    def scatter() -> go.Figure:
        low, high = float(min(y.min(), predicted.min())), float(max(y.max(), predicted.max()))
        figure = go.Figure([go.Scatter(x=y, y=predicted, mode="markers", name="test rows", opacity=0.6),
                            go.Scatter(x=[low, high], y=[low, high], mode="lines", name="perfect",
                                       line={"dash": "dot", "color": "gray"})])
        figure.update_layout(xaxis_title="actual", yaxis_title="predicted")
        return figure

    def residuals() -> go.Figure:
        figure = go.Figure(go.Scatter(x=predicted, y=y - predicted, mode="markers", opacity=0.6, name="residual"))
        figure.add_hline(y=0, line_dash="dot", line_color="gray")
        figure.update_layout(xaxis_title="predicted", yaxis_title="actual - predicted")
        return figure

    return [_attempt("predicted", "Predicted vs actual (test rows)", scatter),
            _attempt("residuals", "Residuals (test rows)", residuals)]


def depth_figure(curve: list[dict[str, Any]], metric: str) -> go.Figure:
    """The depth search of a `strategy: depth` run: each depth's best mean CV score with one
    standard error as error bars, the chosen depth highlighted."""
    scored = [p for p in curve if p.get("score") is not None]
    if not scored:
        raise ValueError("no depth has a complete trial")
    figure = go.Figure(go.Scatter(
        x=[p["depth"] for p in scored], y=[p["score"] for p in scored], mode="lines+markers", name="best trial",
        error_y={"type": "data", "array": [p.get("se") or 0.0 for p in scored], "visible": True},
        customdata=[[p.get("se") or 0.0, p.get("trials", "-")] for p in scored],
        hovertemplate="%{x} hidden layers: %{y:.4f} ± %{customdata[0]:.4f} (%{customdata[1]} trials)<extra></extra>"))
    chosen = [p for p in scored if p.get("chosen")]
    if chosen:
        figure.add_trace(go.Scatter(x=[chosen[0]["depth"]], y=[chosen[0]["score"]], mode="markers", name="chosen",
                                    marker={"size": 16, "symbol": "star", "color": "#d62728"}))
    figure.update_layout(xaxis_title="hidden layers (n_layers)", yaxis_title=f"mean CV {metric}",
                         xaxis={"dtick": 1})
    return figure


def export_pngs(figures: list[Figure], directory: str | Path, scale: float = 2.0) -> list[Path]:
    """Each drawn figure as `<directory>/<key>.png` (plotly's static export through kaleido,
    which drives a local Chrome or Chromium); returns the files written."""
    try:
        import kaleido  # noqa: F401
        import plotly.io as pio
    except ImportError:
        raise ConfigError("PNG export needs kaleido: pip install 'nntune[png]'") from None
    directory = Path(directory)
    claim_figures(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / FIGURES_MARKER).touch()  # nntune's directory: a later export may write here again
    drawn = [f for f in figures if f.figure is not None]
    paths = [directory / f"{f.key}.png" for f in drawn]
    try:
        pio.write_images([f.figure for f in drawn], paths, scale=scale, width=1000, height=450)
    except Exception as exc:  # no browser found, most often
        raise ConfigError(f"PNG export failed ({str(exc).splitlines()[0]}); it needs Chrome or Chromium "
                          "installed (apt install chromium, or run plotly_get_chrome)") from None
    return paths
