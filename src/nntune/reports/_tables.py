"""Read-only summaries of a run: the best trial, the top trials and the test scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table

from ..errors import ConfigError


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """The run's result.json, with a clear error when `run_dir` is not a finished run."""
    run_dir = Path(run_dir)
    result_file = run_dir / "result.json"
    if not result_file.exists():
        raise ConfigError(f"'{run_dir}' is not an nntune run directory (no result.json in it)")
    result = json.loads(result_file.read_text())
    result["storage"] = _local_storage(result.get("storage", ""), run_dir)
    return result


def _local_storage(url: str, run_dir: Path) -> str:
    """A study file of the run itself is read from the run directory, whatever the current
    directory (result.json may hold a relative path) and wherever the run was moved; other
    storages are used as they are."""
    if url.startswith("sqlite:///"):
        prefix, path = "sqlite:///", Path(url.removeprefix("sqlite:///"))
    elif url and "://" not in url:
        prefix, path = "", Path(url)
    else:
        return url
    if path.is_absolute() and path.exists():
        return url
    beside = run_dir / path.name
    return f"{prefix}{beside.resolve()}" if beside.exists() else url


def top_trials(trials: list[dict[str, Any]], direction: str, n: int = 10) -> list[dict[str, Any]]:
    done = [t for t in trials if t["state"] == "complete" and t["value"] is not None]
    sign = -1.0 if direction == "maximize" else 1.0
    return sorted(done, key=lambda t: (sign * t["value"], t.get("val_loss") or float("inf")))[:n]


def summary_table(result: dict[str, Any]) -> Table:
    table = Table(title=f"study {result['study']}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    std = result.get("best_std")
    shown = f"{result['best_value']:.4f}" + (f" ± {std:.4f} over folds" if std is not None else "")
    table.add_row(f"best validation {result['metric']}", shown)
    for name, value in result["test_scores"].items():
        table.add_row(f"test {name}", f"{value:.4f}")
    table.add_row("trials", ", ".join(f"{n} {s}" for s, n in result["n_trials"].items()))
    if result.get("ensemble"):
        table.add_row("delivered", ensemble_text(result))
    if result.get("failed"):
        table.add_row("failed", failures_text(result["failed"]))
    for warning in result.get("warnings") or []:
        table.add_row("warning", warning)
    table.add_row("time", f"{result['seconds']:.1f} s")
    table.add_row("model", result["model_dir"])
    return table


def ensemble_text(result: dict[str, Any]) -> str:
    """The delivered ensemble beside the best trial alone, on validation and test rows."""
    ensemble, metric = result["ensemble"], result["metric"]
    if "seeds" in ensemble:  # refits of the best trial's recipe, one per seed
        test, seeds = ensemble["test"], ", ".join(map(str, ensemble["seeds"]))
        return (f"{len(ensemble['seeds'])} refits of trial {result['best_trial']}'s recipe (seeds {seeds}) "
                f"averaged: test {test['ensemble'].get(metric, float('nan')):.4f} "
                f"(the first alone {test['best_trial'].get(metric, float('nan')):.4f})")
    trials = ", ".join(f"{n} x{c}" for n, c in zip(ensemble["trials"], ensemble["counts"], strict=True))
    val, test = ensemble["validation"], ensemble["test"]
    return (f"fold models of trials {trials}: out-of-fold {metric} {val['ensemble']:.4f} (best trial alone "
            f"{val['best_trial']:.4f}), test {test['ensemble'].get(metric, float('nan')):.4f} "
            f"(best trial alone {test['best_trial'].get(metric, float('nan')):.4f})")


def failures_text(failed: dict[str, Any]) -> str:
    """'3 trials (most often: ...); 1 worker (...)': why a run has fewer trials than asked."""
    parts = []
    if failed.get("trials"):
        parts.append(f"{failed['trials']} trial{'s' if failed['trials'] != 1 else ''} "
                     f"(most often: {failed.get('most_common')})")
    if failed.get("workers"):
        errors = "; ".join(failed.get("worker_errors") or [])
        parts.append(f"{failed['workers']} worker{'s' if failed['workers'] != 1 else ''} failed ({errors})")
    return "; ".join(parts)


def params_table(params: dict[str, Any], title: str = "best configuration") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("parameter")
    table.add_column("value")
    for name, value in params.items():
        table.add_row(name, _fmt(value))
    return table


def trials_table(trials: list[dict[str, Any]], metric: str) -> Table:
    table = Table(title="top trials", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column(metric, justify="right")
    table.add_column("±", justify="right")
    table.add_column("epochs", justify="right")
    table.add_column("s", justify="right")
    table.add_column("parameters", overflow="fold")
    for t in trials:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in t["params"].items())
        table.add_row(str(t["number"]), f"{t['value']:.4f}", _fmt(t.get("score_std")),
                      _fmt(t.get("epochs")), _fmt(t.get("train_seconds")), params)
    return table


def run_report(result: dict[str, Any], trials: list[dict[str, Any]]) -> Group:
    """Everything `nntune show` prints."""
    top = top_trials(trials, result["direction"])
    parts = [summary_table(result), params_table(result["best_params"])]
    if result.get("pareto_front"):
        parts.append(pareto_table(result["pareto_front"]))
    if result.get("depth_curve"):
        parts.append(depth_table(result["depth_curve"], result["metric"]))
    return Group(*parts, trials_table(top, result["metric"]))


def depth_table(curve: list[dict[str, Any]], metric: str) -> Table:
    """The depth search of a `strategy: depth` run: each depth tried, its best mean CV score
    with the standard error, and the depth kept (one-standard-error rule)."""
    table = Table(title="depth search (one-standard-error rule)", title_justify="left")
    for name in ("n_layers", f"CV {metric}", "SE", "trials", "chosen"):
        table.add_column(name, justify="right")
    for point in curve:
        table.add_row(str(point["depth"]), _fmt(point.get("score")), _fmt(point.get("se")),
                      str(point.get("trials", "")), "yes" if point.get("chosen") else "")
    return table


def pareto_table(front: list[dict[str, Any]]) -> Table:
    """The Pareto-optimal trials of a multi-objective run, one column per objective."""
    names = list(front[0]["values"])
    table = Table(title=f"Pareto front ({len(front)} trials)", title_justify="left")
    table.add_column("trial", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for trial in front:
        table.add_row(str(trial["number"]), *[_fmt(trial["values"][n]) for n in names])
    return table


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
