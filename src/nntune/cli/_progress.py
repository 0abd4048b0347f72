"""A rich progress bar fed by the trial callback: trials done, best score, elapsed, ETA."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

if TYPE_CHECKING:
    import optuna


class TrialProgress:
    """Context manager; pass `.start` as `on_start` and `.callback` in `callbacks` of
    `nntune.tune`, so the bar appears once the input has been checked and the search begins."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.done = 0

    def start(self, plan: dict) -> None:
        total, timeout, metric = plan["trials"], plan["timeout"], plan["metric"]
        self.by_time = total is None and timeout is not None
        self.progress = Progress(
            TextColumn("[bold]tuning"), BarColumn(), MofNCompleteColumn() if not self.by_time
            else TextColumn("{task.fields[done]} trials"),
            TextColumn("best {task.fields[metric]} [bold]{task.fields[best]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=False,
        )
        self.task = self.progress.add_task(
            "tune", total=timeout if self.by_time else total, done=plan.get("done", 0),
            completed=0 if self.by_time else plan.get("done", 0), best="-", metric=metric)
        self.progress.start()

    def __enter__(self) -> TrialProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def callback(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.progress is None:
            return
        self.done += 1
        try:
            best = f"{study.best_value:.4f}" if len(study.directions) == 1 else f"{len(study.best_trials)} on the front"
        except ValueError:
            best = "-"
        if self.by_time:
            elapsed = self.progress.tasks[0].elapsed or 0.0
            self.progress.update(self.task, completed=elapsed, done=self.done, best=best)
        else:
            self.progress.update(self.task, advance=1, best=best, done=self.done)


class WorkerProgress:
    """A spinner line for `nntune worker`: trials this worker ran and the study's best."""

    def __init__(self, console: Console, study: str) -> None:
        from rich.progress import SpinnerColumn

        self.progress = Progress(SpinnerColumn(), TextColumn(f"[bold]worker[/] {study}: "
                                 "{task.fields[done]} trials, best {task.fields[best]}"),
                                 TimeElapsedColumn(), console=console)
        self.task = self.progress.add_task("work", total=None, done=0, best="-")

    def start(self) -> None:
        self.progress.start()

    def __enter__(self) -> WorkerProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def callback(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        try:
            best = f"{study.best_value:.4f}" if len(study.directions) == 1 else f"{len(study.best_trials)} on the front"
        except ValueError:
            best = "-"
        done = self.progress.tasks[0].fields["done"] + 1
        self.progress.update(self.task, done=done, best=best)
