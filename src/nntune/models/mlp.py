"""`mlp`: a multilayer perceptron for tables, from zero hidden layers (a linear model) upward."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ..errors import ConfigError, check_choice
from ._registry import Family, ModelMeta, register_family

ACTIVATIONS = {
    "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU,
    "silu": nn.SiLU, "tanh": nn.Tanh, "selu": nn.SELU,
}
INITS = ("default", "xavier", "kaiming", "orthogonal")
NORMS = ("none", "batch", "layer", "weight")
# How hidden widths follow from `units`: all equal, or shrinking linearly towards the output.
SHAPES = ("brick", "funnel")

DEFAULTS = {
    "n_layers": 2, "units": 128, "shape": "brick", "activation": "relu", "init": "default",
    "dropout": 0.0, "norm": "none", "residual": False,
}

# Common practice: 0 layers suffice for easy problems, 1-2 are the usual balance, more for hard
# ones; widths on a log scale; dropout up to one half. `shape` stays fixed at brick: one shared
# width already covers every depth without a parameter per layer, and a second choice would
# only thin out a short search.
SPACE = {
    "n_layers": {"type": "int", "low": 0, "high": 4},
    "units": {"type": "int", "low": 16, "high": 512, "log": True},
    "activation": {"type": "categorical", "choices": ["relu", "gelu", "silu", "leaky_relu", "tanh"]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "norm": {"type": "categorical", "choices": ["none", "batch", "layer"]},
}

# Strong first trials, tried before the sampler takes over: the recipes that practitioners
# start from (Adam at 1e-3; SGD with momentum 0.9 at 1e-2) on 1-2 hidden layers of 128-256
# units; on large tables, where only a handful of trials fit, they are often the winners
# (docs/strategies.md). A network of the user's own (no family) starts from them too.
STARTING_POINTS = (
    {"optimizer": "adam", "lr": 1e-3, "n_layers": 2, "units": 128, "activation": "relu",
     "dropout": 0.1, "norm": "none", "batch_size": 64, "schedule": "constant", "weight_decay": 1e-5},
    {"optimizer": "sgd", "lr": 1e-2, "momentum": 0.9, "n_layers": 1, "units": 256,
     "activation": "relu", "dropout": 0.0, "norm": "batch", "batch_size": 64,
     "schedule": "cosine", "weight_decay": 1e-4},
)


class Block(nn.Module):
    """Linear -> norm -> activation -> dropout, with an identity shortcut when shapes allow."""

    def __init__(self, in_dim: int, out_dim: int, params: Mapping[str, Any]) -> None:
        super().__init__()
        linear = nn.Linear(in_dim, out_dim)
        _initialise(linear, params["init"], params["activation"])
        norm = params["norm"]
        self.linear = weight_norm(linear) if norm == "weight" else linear
        self.norm = (nn.BatchNorm1d(out_dim) if norm == "batch"
                     else nn.LayerNorm(out_dim) if norm == "layer" else nn.Identity())
        self.activation = ACTIVATIONS[params["activation"]]()
        self.dropout = nn.Dropout(params["dropout"]) if params["dropout"] > 0 else nn.Identity()
        self.residual = bool(params["residual"]) and in_dim == out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(self.activation(self.norm(self.linear(x))))
        return x + out if self.residual else out


class MLP(nn.Module):
    def __init__(self, widths: list[int], output_dim: int, params: Mapping[str, Any]) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(Block(a, b, params) for a, b in zip(widths, widths[1:], strict=False)))
        self.head = nn.Linear(widths[-1], output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x))


def layer_widths(params: Mapping[str, Any], output_dim: int = 1) -> list[int]:
    """Hidden widths: `units_<i>` per layer where given, else what `units` and `shape` make.

    brick: every hidden layer `units` wide. funnel: hidden layer i of n is
    round(units - i * (units - output_dim) / n) wide (halves rounded up), so the first layer
    has `units` and the widths step down evenly towards the output; when `units` is not above
    `output_dim` a funnel is a brick. One `units` thus describes a network of any depth.
    """
    n_layers = int(params["n_layers"])
    if n_layers < 0:
        raise ConfigError(f"n_layers must be >= 0; got {n_layers}")
    shape = check_choice("shape", params.get("shape", "brick"), SHAPES)
    units = int(params["units"])
    step = max(0, units - output_dim) / n_layers if shape == "funnel" and n_layers else 0.0
    widths = [int(params.get(f"units_{i}", math.floor(units - i * step + 0.5))) for i in range(n_layers)]
    if any(w < 1 for w in widths):
        raise ConfigError(f"units must be >= 1; got {widths}")
    return widths


def build(params: Mapping[str, Any], meta: ModelMeta) -> nn.Module:
    check_choice("activation", params["activation"], ACTIVATIONS)
    check_choice("init", params["init"], INITS)
    check_choice("norm", params["norm"], NORMS)
    return MLP([meta.input_dim, *layer_widths(params, meta.output_dim)], meta.output_dim, params)


def _initialise(linear: nn.Linear, init: str, activation: str) -> None:
    if init == "default":
        return
    if init == "xavier":
        nn.init.xavier_uniform_(linear.weight)
    elif init == "kaiming":
        nonlinearity = "leaky_relu" if activation == "leaky_relu" else "relu"
        nn.init.kaiming_uniform_(linear.weight, nonlinearity=nonlinearity)
    elif init == "orthogonal":
        nn.init.orthogonal_(linear.weight)
    nn.init.zeros_(linear.bias)


def shape_of_weights(state: Mapping[str, Any]) -> dict[str, Any]:
    """n_layers, widths and norm of the MLP whose state dict `state` is (empty when the names
    are not an MLP's): one `units` when every hidden layer is equally wide, else `units_<i>`."""
    widths = []
    while True:
        weight = state.get(f"blocks.{len(widths)}.linear.weight",
                           state.get(f"blocks.{len(widths)}.linear.parametrizations.weight.original1"))
        if weight is None:
            break
        widths.append(int(weight.shape[0]))
    if "head.weight" not in state:
        return {}
    norm = ("weight" if "blocks.0.linear.parametrizations.weight.original0" in state
            else "batch" if "blocks.0.norm.running_mean" in state
            else "layer" if "blocks.0.norm.weight" in state else "none")
    shape = {"n_layers": len(widths), "norm": norm, "shape": "brick"}
    if len(set(widths)) <= 1:
        return {**shape, "units": widths[0] if widths else DEFAULTS["units"]}
    return {**shape, "units": widths[0], **{f"units_{i}": w for i, w in enumerate(widths)}}


register_family(Family("mlp", build, DEFAULTS, SPACE, data_kinds=("table",),
                       shape_keys=("n_layers", "units", "shape", "norm", "units_*"),
                       shape_of_weights=shape_of_weights, starting_points=STARTING_POINTS))
