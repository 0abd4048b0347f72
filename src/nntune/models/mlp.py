"""`mlp`: a multilayer perceptron for tables, from zero hidden layers (a linear model) upward,
optionally with numerical embeddings of the numeric columns (`embedding`) and as k TabM members
sharing most weights (`k`, `ensemble`); see `_tabular_blocks`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ..errors import ConfigError, check_choice
from ._registry import Family, ModelMeta, register_family
from ._tabular_blocks import EMBEDDINGS, ENSEMBLES, NumericEmbedding, TabularMLP, combine_for, make_members

ACTIVATIONS = {
    "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU,
    "silu": nn.SiLU, "tanh": nn.Tanh, "selu": nn.SELU,
}
INITS = ("default", "xavier", "kaiming", "orthogonal")
NORMS = ("none", "batch", "layer", "weight")
# How hidden widths follow from `units`: all equal, or shrinking linearly towards the output.
SHAPES = ("brick", "funnel")

# The plain network: what a parameter left out means (so models saved before the embeddings
# and ensembles existed rebuild as they were trained).
PLAIN = {"embedding": "none", "k": 1}
DEFAULTS = {
    "n_layers": 2, "units": 128, "shape": "brick", "activation": "relu", "init": "default",
    "dropout": 0.0, "norm": "none", "residual": False,
    **PLAIN, "ensemble": "tabm",
    # Embeddings: an init scale of 0.1 sits in the middle of the published tuned values
    # (rtdl_num_embeddings: the best is under 0.2 on half the tasks, and smaller is the safe
    # side). 16 frequencies and 8 values per column instead of the package's 48 and 24: the
    # sines and cosines dominate a step on one CPU thread, and these cost a third as much.
    "embedding_dim": 8, "embedding_frequencies": 16, "embedding_scale": 0.1,
}

# Common practice: 0 layers suffice for easy problems, 1-2 are the usual balance, more for hard
# ones; widths on a log scale; dropout up to one half. `shape` stays fixed at brick: one shared
# width already covers every depth without a parameter per layer, and a second choice would
# only thin out a short search. `embedding`: with or without the lite periodic embeddings, the
# cheapest kind, for 1.3-2x the time of a trial. Measured with fixed recipes on 13 tables:
# +5 points of test accuracy on wine quality (4,898 rows), up to +4 points of cross-validated
# accuracy on glass and horse colic, -2 on breast cancer; on tables of 200-300 rows the test
# scores moved by a row or two either way; so the search decides per table. `k` is not
# searched: TabM members cost 3-5x per trial on one thread and did not beat k = 1 on those
# small tables, where the delivered model already averages fold models; set it to ensemble.
SPACE = {
    "n_layers": {"type": "int", "low": 0, "high": 4},
    "units": {"type": "int", "low": 16, "high": 512, "log": True},
    "activation": {"type": "categorical", "choices": ["relu", "gelu", "silu", "leaky_relu", "tanh"]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "norm": {"type": "categorical", "choices": ["none", "batch", "layer"]},
    "embedding": {"type": "categorical", "choices": ["none", "plr_lite"]},
    # The embeddings' initial frequency scale decides what they resolve, and no one value
    # suits every table (the TabM paper tunes it on a log scale from 0.01 to 10). The first
    # recipe alone, at 0.1 against 1.0 (benchmarks/tabular.py's tables, seed 0): 1.0 scored
    # +3 points of R^2 on beijing_pm25, +4 of accuracy on wine_quality_white, +0.8 on taxis;
    # 0.1 scored +3 on synthetic, +4 on ecoli, +5 on glass, +4 on diabetes and tips.
    "embedding_scale": {"type": "float", "low": 0.01, "high": 10.0, "log": True,
                        "when": {"embedding": "plr_lite"}},
}

# The tuned default, tried first: TabM's published starting configuration (AdamW at 2e-3,
# weight decay 3e-4, dropout 0.1; Gorishniy et al. 2024) with lite periodic embeddings of the
# numeric columns and, in the preprocessing, RealMLP's robust scaling with smooth clipping
# (Holzmueller et al. 2024), scaled to one CPU thread: two layers of 128 instead of three of 512.
MODERN_RECIPE = {
    "optimizer": "adamw", "lr": 2e-3, "weight_decay": 3e-4, "n_layers": 2, "units": 128,
    "activation": "relu", "dropout": 0.1, "norm": "none", "batch_size": 64, "schedule": "constant",
    "embedding": "plr_lite", "embedding_scale": 0.1,
}
# Strong first trials, tried before the sampler takes over: the tuned default (at two frequency
# scales), then the recipes that practitioners start from (Adam at 1e-3; SGD with momentum 0.9
# at 1e-2) on 1-2 hidden layers of 128-256 units; on large tables, where only a handful of
# trials fit, they are often the winners (docs/strategies.md). A network of the user's own (no
# family) starts from them too.
STARTING_POINTS = (
    MODERN_RECIPE,
    # The same at a ten times larger frequency scale (see SPACE): the two sides of a
    # choice that moves test scores by 3-5 points either way, both tried before the sampler.
    {**MODERN_RECIPE, "embedding_scale": 1.0},
    {"optimizer": "adam", "lr": 1e-3, "n_layers": 2, "units": 128, "activation": "relu",
     "dropout": 0.1, "norm": "none", "batch_size": 64, "schedule": "constant", "weight_decay": 1e-5,
     "embedding": "none"},
    {"optimizer": "sgd", "lr": 1e-2, "momentum": 0.9, "n_layers": 1, "units": 256,
     "activation": "relu", "dropout": 0.0, "norm": "batch", "batch_size": 64,
     "schedule": "cosine", "weight_decay": 1e-4, "embedding": "none"},
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
    norm = check_choice("norm", params["norm"], NORMS)
    embedding = check_choice("embedding", params["embedding"], EMBEDDINGS)
    ensemble = check_choice("ensemble", params["ensemble"], ENSEMBLES)
    k = int(params["k"])
    if k < 1 or k != params["k"]:
        raise ConfigError(f"k (TabM ensemble members) must be a whole number >= 1 (1: one network); got {params['k']}")
    if k > 1 and norm == "weight":
        raise ConfigError("norm 'weight' reparametrizes one network's layers; with k > 1 use norm none, batch or layer")
    numeric = numeric_columns(meta) if embedding != "none" else 0
    widths = layer_widths(params, meta.output_dim)
    if k == 1 and not numeric:  # the plain network, with the names compression and transfer expect
        return MLP([meta.input_dim, *widths], meta.output_dim, params)
    embed = None
    chunks = [1] * meta.input_dim  # each input feature's width, for TabM's first scaling
    if numeric:
        embed = NumericEmbedding(embedding, numeric, int(params["embedding_dim"]),
                                 int(params["embedding_frequencies"]), float(params["embedding_scale"]))
        chunks = [embed.dim] * numeric + [1] * (meta.input_dim - numeric)
    plain = MLP([sum(chunks), *widths], meta.output_dim, params)
    head, member_scale = plain.head, None
    if k > 1:
        head, member_scale = make_members(plain.blocks, plain.head, k, ensemble, chunks, embedded=bool(numeric))
    return TabularMLP(embed, plain.blocks, head, k, combine_for(meta.task, meta.output_dim), member_scale)


def beyond_plain(params: Mapping[str, Any]) -> list[str]:
    """What makes the network more than a plain MLP (embeddings, TabM members), in words; empty
    for the plain network that compression, pretraining and surgery on `blocks` assume."""
    params = {**DEFAULTS, **params}
    parts = []
    if params["embedding"] != "none":
        parts.append(f"numerical embeddings ({params['embedding']})")
    if int(params["k"]) > 1:
        parts.append(f"{int(params['k'])} TabM members ({params['ensemble']})")
    return parts


def numeric_columns(meta: ModelMeta) -> int:
    """How many of the first input columns are numbers (the rest are one-hot), from the table's
    preprocessing; 0 leaves nothing to embed."""
    if "numeric_columns" not in meta.extra:
        raise ConfigError("numerical embeddings need to know which input columns are numeric "
                          "(ModelMeta.extra['numeric_columns'], set for tables nntune encodes); "
                          "use embedding 'none'")
    return int(meta.extra["numeric_columns"])


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
    """n_layers, widths, norm, embedding and TabM members of the MLP whose state dict `state` is
    (empty when the names are not an MLP's): one `units` when every hidden layer is equally
    wide, else `units_<i>`. (Weights cannot tell periodic from plr: ReLU has none; plr is read.)"""
    widths = []
    while True:
        weight = state.get(f"blocks.{len(widths)}.linear.weight",
                           state.get(f"blocks.{len(widths)}.linear.parametrizations.weight.original1"))
        if weight is None:
            break
        # A packed member layer stores (k, in, out); the others (out, in).
        widths.append(int(weight.shape[-1] if weight.dim() == 3 else weight.shape[0]))
    if "head.weight" not in state:
        return {}
    norm = ("weight" if "blocks.0.linear.parametrizations.weight.original0" in state
            else "batch" if "blocks.0.norm.running_mean" in state or "blocks.0.norm.impl.running_mean" in state
            else "layer" if "blocks.0.norm.weight" in state or "blocks.0.norm.affine.weight" in state
            else "none")
    shape = {"n_layers": len(widths), "norm": norm, "shape": "brick", **_members_of(state), **_embedding_of(state)}
    if len(set(widths)) <= 1:
        return {**shape, "units": widths[0] if widths else DEFAULTS["units"]}
    return {**shape, "units": widths[0], **{f"units_{i}": w for i, w in enumerate(widths)}}


def _members_of(state: Mapping[str, Any]) -> dict[str, Any]:
    head = state["head.weight"]
    if head.dim() != 3:  # one network's (outputs, inputs)
        return {"k": 1}
    ensemble = ("mini" if "member_scale.weight" in state
                else "packed" if getattr(state.get("blocks.0.linear.weight"), "ndim", 0) == 3 else "tabm")
    return {"k": int(head.shape[0]), "ensemble": ensemble}


def _embedding_of(state: Mapping[str, Any]) -> dict[str, Any]:
    frequencies = state.get("embedding.embed.periodic.weight")  # (numeric columns, frequencies)
    if frequencies is None:
        return {"embedding": "none"}
    linear = state["embedding.embed.linear.weight"]  # lite: (dim, 2f); per column: (columns, 2f, dim)
    lite = linear.dim() == 2
    return {"embedding": "plr_lite" if lite else "plr", "embedding_frequencies": int(frequencies.shape[1]),
            "embedding_dim": int(linear.shape[0] if lite else linear.shape[-1])}


# Classifiers train with label smoothing 0.1, as RealMLP-TD's tuned default does (Holzmueller et
# al. 2024). The first recipe alone (benchmarks/first_recipe.py, the 15 classification tables,
# seeds 0 and 1): +0.6 points of test accuracy on average [95% interval -0.3, +1.5], better on 15
# of 30 pairs, worse on 3, among them wine quality at seed 1 (-9: there the unsmoothed trial
# trained five times longer before it stopped). Under a minute's search (tabular.py, seed 0):
# +0.3 [-0.5, +1.1], better on 5 tables, worse on 3.
register_family(Family("mlp", build, DEFAULTS, SPACE, data_kinds=("table",), label_smoothing=0.1,
                       shape_keys=("n_layers", "units", "shape", "norm", "units_*", "k", "ensemble", "embedding",
                                   "embedding_dim", "embedding_frequencies"),
                       shape_of_weights=shape_of_weights, starting_points=STARTING_POINTS))
