"""nntune: tune neural networks end to end, from a table to a saved, tested model.

>>> import nntune
>>> result = nntune.tune(dataset="breast_cancer", trials=20)
>>> result.best_params, result.test_scores
>>> model = nntune.load(result.model_dir); model.predict(new_rows)
"""

__version__ = "0.1.0"

from .api import TuneResult, make_config, tune  # noqa: E402
from .config import RunConfig  # noqa: E402
from .errors import (  # noqa: E402
    ConfigError,
    DataError,
    ModelDirError,
    NntuneError,
    StudyExistsError,
    TrialFailed,
)
from .predictor import Predictor, load  # noqa: E402
from .search import HyperParameters  # noqa: E402


def schema() -> dict:
    """The JSON Schema of the YAML config, for editors that validate and complete it."""
    return RunConfig.model_json_schema()


__all__ = [
    "ConfigError", "DataError", "HyperParameters", "ModelDirError", "NntuneError", "Predictor",
    "RunConfig", "StudyExistsError", "TrialFailed", "TuneResult", "load", "make_config",
    "schema", "tune",
]
