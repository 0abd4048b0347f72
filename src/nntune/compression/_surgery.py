"""Small operations on an MLP's layers that the compression methods share."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..models import ModelMeta, build_model
from ..models.mlp import MLP


def plain_copy(module: nn.Module, params: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """A copy of `module` with weight norm folded into plain weights, and the params that
    rebuild it. Weight norm only reparametrizes a Linear, so the function is unchanged, and
    pruning and quantization then see ordinary `weight` tensors."""
    if not any(isinstance(m, nn.Linear) and parametrize.is_parametrized(m, "weight") for m in module.modules()):
        return copy.deepcopy(module).cpu().eval(), dict(params)
    # A fresh plain network, filled with the effective weights. (Removing the parametrization
    # from a deep copy would also strip the original: both share the generated layer class.)
    params = {**params, "norm": "none"}
    plain = build_model("mlp", params, _meta_of(module))
    state = {k: v for k, v in module.state_dict().items() if ".parametrizations." not in k}
    for name, layer in module.named_modules():
        if isinstance(layer, nn.Linear):
            state[f"{name}.weight"] = layer.weight.detach().clone()
    plain.load_state_dict({k: v.cpu() for k, v in state.items()})
    return plain.eval(), params


def linears(module: nn.Module) -> list[nn.Linear]:
    """Every Linear layer in forward order (hidden blocks, then the head)."""
    return [m for m in module.modules() if isinstance(m, nn.Linear)]



@torch.no_grad()
def fold_batch_norm(module: nn.Module, params: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """A copy of an MLP with each eval-mode batch norm folded into the Linear before it, and
    the params (norm "none") that rebuild it; other networks come back unchanged.

    In eval mode batch norm is a fixed scale and shift per neuron, and it comes right after the
    Linear, so W' = s * W and b' = s * (b - mean) + beta with s = gamma / sqrt(var + eps) give
    the same outputs. Int8 storage then holds no per-neuron statistics beside the weights.
    """
    if not isinstance(module, MLP) or params.get("norm") != "batch" or \
            not all(isinstance(b.norm, nn.BatchNorm1d) for b in module.blocks):
        return module, params
    blocks = list(module.blocks)
    params = {**params, "norm": "none"}
    folded = build_model("mlp", params, _meta_of(module))
    state = {}
    for i, block in enumerate(blocks):
        bn, linear = block.norm, block.linear
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        state[f"blocks.{i}.linear.weight"] = linear.weight * scale[:, None]
        state[f"blocks.{i}.linear.bias"] = (linear.bias - bn.running_mean) * scale + bn.bias
    state["head.weight"], state["head.bias"] = module.head.weight, module.head.bias
    folded.load_state_dict({k: v.detach().cpu() for k, v in state.items()})
    return folded.eval(), params


def _meta_of(module: nn.Module) -> ModelMeta:
    # The mlp family's layers depend on the widths only, not on the task.
    layers = linears(module)
    return ModelMeta(layers[0].in_features, layers[-1].out_features, "binary")
