"""Models: the family registry and the networks. Builds modules from plain values only."""

from . import (
    bag,  # noqa: F401  (registers the 'bag' family)
    capsnet,  # noqa: F401  (registers the 'capsnet' family)
    cnn,  # noqa: F401  (registers the 'cnn' family)
    cnn_rnn,  # noqa: F401  (registers the 'cnn_rnn' family)
    gnn,  # noqa: F401  (registers 'gnn'; torch_geometric is imported at build time)
    mlp,  # noqa: F401  (registers the 'mlp' family)
    rnn,  # noqa: F401  (registers the 'rnn' family)
    transformer,  # noqa: F401  (registers the 'transformer' family)
)
from ._ensemble import Ensemble
from ._registry import (
    Family,
    ModelMeta,
    build_model,
    count_parameters,
    family_names,
    get_family,
    register_family,
)

__all__ = ["Ensemble", "Family", "ModelMeta", "build_model", "count_parameters", "family_names",
           "get_family", "register_family"]
