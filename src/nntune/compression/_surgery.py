"""Small operations on an MLP's layers that the compression methods share."""

from __future__ import annotations

import copy
from typing import Any

from torch import nn
from torch.nn.utils import parametrize

from ..models import ModelMeta, build_model


def plain_copy(module: nn.Module, params: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """A copy of `module` with weight norm folded into plain weights, and the params that
    rebuild it. Weight norm only reparametrizes a Linear, so the function is unchanged, and
    pruning and quantization then see ordinary `weight` tensors."""
    if not any(isinstance(m, nn.Linear) and parametrize.is_parametrized(m, "weight") for m in module.modules()):
        return copy.deepcopy(module).cpu().eval(), dict(params)
    # A fresh plain network, filled with the effective weights. (Removing the parametrization
    # from a deep copy would also strip the original: both share the generated layer class.)
    layers = linears(module)
    params = {**params, "norm": "none"}
    # The mlp family's layers depend on the widths only, not on the task.
    meta = ModelMeta(layers[0].in_features, layers[-1].out_features, "binary")
    plain = build_model("mlp", params, meta)
    state = {k: v for k, v in module.state_dict().items() if ".parametrizations." not in k}
    for name, layer in module.named_modules():
        if isinstance(layer, nn.Linear):
            state[f"{name}.weight"] = layer.weight.detach().clone()
    plain.load_state_dict({k: v.cpu() for k, v in state.items()})
    return plain.eval(), params


def linears(module: nn.Module) -> list[nn.Linear]:
    """Every Linear layer in forward order (hidden blocks, then the head)."""
    return [m for m in module.modules() if isinstance(m, nn.Linear)]

