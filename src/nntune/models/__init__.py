"""Models: the family registry and the networks. Builds modules from plain values only."""

from . import mlp  # noqa: F401  (registers the 'mlp' family)
from ._registry import (
    Family,
    ModelMeta,
    build_model,
    count_parameters,
    family_names,
    get_family,
    register_family,
)

__all__ = ["Family", "ModelMeta", "build_model", "count_parameters", "family_names",
           "get_family", "register_family"]
