"""Durations as people write them: 90, '90s', '10m', '1h', '1h30m'."""

from __future__ import annotations

import math
import re

from ..errors import ConfigError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(value: str | float | int | None, name: str = "timeout") -> float | None:
    """Seconds in `value`, or None for no limit. Raises ConfigError naming the bad value."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a duration such as 90s, 10m or 1h; got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        elif text and _PART.sub("", text) == "" and _PART.findall(text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
        else:
            raise ConfigError(f"{name} must be a duration such as 90s, 10m or 1h; got '{value}'")
    if not math.isfinite(seconds):  # no limit is None (leave the option out), not infinity
        raise ConfigError(f"{name} must be a finite duration such as 90s, 10m or 1h; got '{value}'")
    if seconds <= 0:
        raise ConfigError(f"{name} must be positive; got '{value}'")
    return seconds
