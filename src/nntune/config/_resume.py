"""What defines a run, so that a resumed study never mixes two configurations.

Trials of one study are compared with each other (the best is picked across them), so every
option that changes what a trial's score means (metric, folds, seed, split sizes, space,
family, data options, training recipe) must be the same for all of them. Options that only
bound or place the work may change between runs of one study.
"""

from __future__ import annotations

import json
from typing import Any

from ._models import RunConfig

# Dotted keys (or their prefixes) that bound or place the work; everything else defines the run.
# data.path may change because the data itself is compared by checksum.
MAY_CHANGE = ("search.trials", "search.timeout", "search.warm_start", "search.population", "execution",
              "training.threads", "training.device", "training.final", "training.ensemble", "storage", "study",
              "out", "resume", "compress", "data.path")


def public_config(cfg: RunConfig) -> dict[str, Any]:
    """The whole config as JSON, as stored with the study (which optuna-dashboard shows), with
    passwords in URLs (the storage's, above all) masked."""
    return _masked(cfg.model_dump(mode="json"))


def _masked(value: Any) -> Any:
    from .._secrets import mask_url

    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return mask_url(value) if isinstance(value, str) else value


def defining_config(cfg: RunConfig) -> dict[str, Any]:
    """The run-defining options of `cfg` as flat dotted keys with JSON values."""
    return {key: value for key, value in _flat(public_config(cfg)).items()
            if not any(key == p or key.startswith(p + ".") for p in MAY_CHANGE)}


def config_differences(stored: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'key: stored X, now Y' for each run-defining key that differs."""
    return [f"{key}: stored {_show(stored.get(key))}, now {_show(new.get(key))}"
            for key in sorted(set(stored) | set(new)) if stored.get(key) != new.get(key)]


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        # The search space is one option: its entries are compared as a whole.
        if isinstance(value, dict) and value and name != "search.space":
            flat.update(_flat(value, name + "."))
        else:
            flat[name] = value
    return flat


def _show(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= limit else text[:limit - 3] + "..."
