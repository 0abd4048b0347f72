"""Config: validated models per section, YAML loading, durations and search-space entries."""

from ._duration import parse_duration
from ._load import build_config, load_config, merge, read_yaml
from ._models import (
    DataConfig,
    EarlyStoppingConfig,
    ExecutionConfig,
    ModelConfig,
    RunConfig,
    SearchConfig,
    TrainingConfig,
)
from ._resume import config_differences, defining_config, public_config
from ._space import ParamSpec, Scalar, SpaceEntry

__all__ = [
    "DataConfig", "EarlyStoppingConfig", "ExecutionConfig", "ModelConfig", "ParamSpec", "RunConfig", "Scalar",
    "SearchConfig", "SpaceEntry", "TrainingConfig", "build_config", "config_differences", "defining_config",
    "load_config", "merge", "public_config",
    "parse_duration", "read_yaml",
]
