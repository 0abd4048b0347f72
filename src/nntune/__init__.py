"""nntune: tune neural networks end to end, from a table to a saved, tested model.

>>> import nntune
>>> result = nntune.tune(dataset="breast_cancer", trials=20)
>>> result.best_params, result.test_scores
>>> model = nntune.load(result.model_dir); model.predict(new_rows)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public names and the modules that define them. They load on first use, so that
# `nntune --help` does not wait for torch, scikit-learn and optuna to import.
_EXPORTS = {
    "tune": "api", "worker": "api", "report": "api", "compare": "api", "ablate": "api",
    "compress": "api", "export": "api",
    "make_config": "api", "TuneResult": "api",
    "load": "predictor", "Predictor": "predictor",
    "HyperParameters": "search", "optimize": "search", "create_study": "search", "Study": "search",
    "RunConfig": "config",
    "ConfigError": "errors", "DataError": "errors", "ModelDirError": "errors",
    "NntuneError": "errors", "StudyExistsError": "errors", "TrialFailed": "errors",
}

__all__ = [
    "ConfigError", "DataError", "HyperParameters", "ModelDirError", "NntuneError", "Predictor",
    "RunConfig", "Study", "StudyExistsError", "TrialFailed", "TuneResult", "load", "make_config",
    "ablate", "compare", "compress", "create_study", "export", "optimize", "report", "schema", "tune", "worker",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nntune' has no attribute '{name}'")


def schema() -> dict:
    """The JSON Schema of the YAML config, for editors that validate and complete it."""
    from .config import RunConfig

    return RunConfig.model_json_schema()


if TYPE_CHECKING:
    from .api import TuneResult, ablate, compare, compress, export, make_config, report, tune, worker
    from .config import RunConfig
    from .errors import (
        ConfigError,
        DataError,
        ModelDirError,
        NntuneError,
        StudyExistsError,
        TrialFailed,
    )
    from .predictor import Predictor, load
    from .search import HyperParameters, Study, create_study, optimize
