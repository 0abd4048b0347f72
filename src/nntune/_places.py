"""Where nntune may write: a place it creates, or one that carries its own marker.

Every command that writes checks its targets with `claim` before any work starts, so a wrong
`--out` costs the user one line of error, never a folder of their files. A directory is
nntune's when it is empty or holds the marker of what nntune writes there (a model directory
its `model.json`, a run its `result.json` or study file); a file is nntune's when it is one
nntune wrote (a report's title, a predictions header, an export's description).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError

MODEL_MARKER = "model.json"
RUN_MARKERS = ("result.json", "study.db", "study.journal")
# Written into a directory of PNG figures nntune created, so that it may write there again.
FIGURES_MARKER = ".nntune-figures"
REPORT_TITLE = "<title>nntune report:"


def claim(path: str | Path, ours: Callable[[Path], bool], what: str, option: str = "--out") -> Path:
    """`path`, if nntune may write it: absent, or `ours(path)`. Anything else is refused."""
    path = Path(path)
    if path.exists() and not ours(path):
        raise ConfigError(f"'{path}' exists and is not {what}; choose another {option} or remove it")
    return path


def _empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def is_model_dir(path: Path) -> bool:
    return _empty_dir(path) or (path.is_dir() and (path / MODEL_MARKER).is_file())


def is_run_dir(path: Path) -> bool:
    return _empty_dir(path) or (path.is_dir() and any((path / name).is_file() for name in RUN_MARKERS))


def is_figures_dir(path: Path) -> bool:
    return _empty_dir(path) or (path.is_dir() and (path / FIGURES_MARKER).is_file())


def is_page(path: Path) -> bool:
    """An HTML page nntune wrote (report, comparison, ablation): they all carry its title."""
    if not path.is_file():
        return False
    with open(path, "rb") as handle:
        return REPORT_TITLE.encode() in handle.read(4096)


def is_json_with(*keys: str) -> Callable[[Path], bool]:
    """A JSON object holding all of `keys`: the numbers nntune writes beside a page."""
    def check(path: Path) -> bool:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and all(key in data for key in keys)
    return check


def is_predictions(path: Path) -> bool:
    """A table `nntune predict` wrote: one `prediction` column or only `proba_*` columns."""
    if not path.is_file():
        return False
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            columns = pq.read_schema(path).names
        else:
            with open(path, encoding="utf-8", errors="replace") as handle:
                columns = handle.readline().strip().split(",")
    except (OSError, ValueError):
        return False
    return columns == ["prediction"] or (bool(columns) and all(c.startswith("proba_") for c in columns))


def is_compare_dir(path: Path) -> bool:
    """What `nntune compare` writes: one run directory per strategy and seed, and its page."""
    return path.is_dir() and all(
        (child.is_dir() and is_run_dir(child)) or child.name in ("compare.html", "compare.json")
        for child in path.iterdir())


def claim_run_dir(run_dir: Path) -> None:
    """A run directory and the model directory inside it, both refused if not nntune's."""
    claim(run_dir, is_run_dir, "an nntune run directory")
    claim(run_dir / "model", is_model_dir, "an nntune model directory")


def claim_figures(directory: str | Path | None, option: str = "--png") -> None:
    if directory is not None:
        claim(directory, is_figures_dir, "a directory of nntune figures", option)


def claim_page(page: Path, numbers: Path | None = None, *keys: str) -> None:
    """An HTML page and, with `numbers`, the JSON written beside it."""
    claim(page, is_page, "a page nntune wrote")
    if numbers is not None:
        claim(numbers, is_json_with(*keys), "numbers nntune wrote")
