"""YAML in, a validated RunConfig out, and every problem as one line that names the key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, did_you_mean
from ._models import RunConfig


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"config file '{path}' is not valid YAML{where}: {problem}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of sections; got {type(loaded).__name__}")
    return loaded


def build_config(raw: Mapping[str, Any], source: str = "config") -> RunConfig:
    """Validate a nested dict; the first problem becomes a ConfigError naming its key."""
    try:
        return RunConfig.model_validate(dict(raw))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `override` into `base` (CLI options over file keys); None leaves base alone."""
    out = dict(base)
    for key, value in override.items():
        if value is None:
            continue
        if isinstance(value, Mapping) and key != "space":
            nested = merge(out.get(key) or {}, value)
            if nested:
                out[key] = nested
        else:
            out[key] = value
    return out


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Read the optional YAML file, apply overrides, validate."""
    raw = read_yaml(path) if path is not None else {}
    data = raw.get("data")
    if path is not None and isinstance(data, dict) and isinstance(data.get("path"), str):
        # A data path that is not there from here is read relative to the config file.
        beside = Path(path).parent / data["path"]
        if not Path(data["path"]).is_absolute() and not Path(data["path"]).exists() and beside.exists():
            raw = {**raw, "data": {**data, "path": str(beside)}}
    return build_config(merge(raw, overrides or {}), str(path or "options"))


def _describe(exc: ValidationError, source: str) -> str:
    error = exc.errors()[0]
    # Union members and validators appear in the location; users only know the keys.
    loc = [str(p) for p in error["loc"]
           if "[" not in str(p) and str(p) not in ("ParamSpec", "bool", "int", "float", "str")]
    key = ".".join(loc)
    if error["type"] == "extra_forbidden":
        accepted = _keys_at(RunConfig, loc[:-1])
        hint = did_you_mean(loc[-1], accepted)
        return (f"unknown key '{key}' in {source}{hint}; accepted here: {', '.join(accepted)}"
                if accepted else f"unknown key '{key}' in {source}")
    message = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    shown = ("" if isinstance(value, dict | list) or value is None or "got" in message
             else f"; got {value!r}")
    return f"{key} in {source}: {message}{shown}"


def _keys_at(model: type[BaseModel], path: list[str]) -> list[str]:
    """Field names of the section at `path`, for 'did you mean' hints on unknown keys."""
    current: Any = model
    for part in path:
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            from ._space import ParamSpec
            return list(ParamSpec.model_fields) if path and path[0] == "search" else []
        annotation = fields[part].annotation
        current = annotation if isinstance(annotation, type) else None
    return list(getattr(current, "model_fields", {}))
