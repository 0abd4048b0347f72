"""`cnn`: a convolutional network for images (2-D convolutions) and for signals, time-series
windows and texts (1-D convolutions along the sequence).

Blocks of conv ('same' padding) -> batch norm -> activation -> pooling by 2 -> dropout, then a
global average over the remaining positions and a linear head (with one hidden layer when
`head_units` > 0). Texts are embedded first; signals and windows keep their last `lookback`
steps when that parameter is given (see `_inputs.sequence_input`).

Compound scaling, after EfficientNet (Tan & Le, 2019), as three multipliers of the base network
that a search can tune together, trading depth, width and input size against each other instead
of only growing one of them (the default space leaves them at 1; see SPACE):

- depth_mult: the network has round(n_blocks * depth_mult) blocks;
- width_mult: the first block has round(channels * width_mult) channels (the later ones grow
  from it by `channel_growth`);
- resolution_mult: images (height and width) and signals (length) are resized by area
  interpolation to resolution_mult times their size before the first convolution: less compute
  and less detail. 1.0 leaves them as they are. Texts and time series ignore it: `seq_len` and
  `lookback` shorten those.

Global pooling makes the weights independent of the input size, so `resolution_mult`,
`lookback` and `seq_len` never change weight shapes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError, check_choice
from ._inputs import sequence_input
from ._registry import Family, ModelMeta, register_family

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
NORMS = ("batch", "none")
POOLS = ("max", "avg", "none")
KINDS = ("image", "signal", "timeseries", "text")
# Channel growth stops here, so a deep network that doubles its channels per block stays
# trainable on a CPU.
MAX_CHANNELS = 256

DEFAULTS = {
    "n_blocks": 2, "channels": 32, "channel_growth": 2.0, "kernel_size": 3, "norm": "batch",
    "pool": "max", "activation": "relu", "dropout": 0.0, "head_units": 0, "embed_dim": 64,
    "depth_mult": 1.0, "width_mult": 1.0, "resolution_mult": 1.0,
}

# Where good networks lay on MNIST-1D (docs/benchmarks.md, `mnist1d` against `mnist1d-narrow`):
# with the compound multipliers searched, every trial shrank the 40-sample signal
# (resolution_mult 0.56-0.95) and spread its budget over depth and width multipliers that
# n_blocks and channels already cover: 93.1% in 14 minutes. With them at 1, 2-4 blocks of
# 32-128 channels, kernels 5-7, dropout up to 0.3 (and AdamW, cosine): 99.0% in 5. So the space
# searches depth and width directly and leaves the multipliers at 1 (a user's space may still search
# them); kernel 3 stays for images, growth 2 for the doubling image networks use. Norm,
# pooling, activation and head stay fixed: they matter less, and a short search is better
# spent on fewer dimensions.
SPACE = {
    "n_blocks": {"type": "int", "low": 2, "high": 4},
    "channels": {"type": "int", "low": 16, "high": 128, "log": True},
    "channel_growth": {"type": "categorical", "choices": [1.0, 2.0]},
    "kernel_size": {"type": "categorical", "choices": [3, 5, 7]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.3},
}

# What the recipes read of texts and series: the SMS recipe's cut (see rnn.STARTING_POINTS) and
# the whole default window of a series (lookback 24: the airline forecasts of cnn_rnn's recipe).
SEQUENCE_WINDOWS = {"seq_len": 64, "vocab_size": 10000, "lookback": 24}

STARTING_POINTS = (
    # The best network of nntune's narrowed MNIST-1D search (docs/benchmarks.md,
    # `mnist1d-narrow`: 99.0% test accuracy): 3 blocks of 59 channels, kernel 7, AdamW at
    # 2.5e-3 with a cosine schedule, batch 64; dropout 0.1 and weight decay 1e-4 are ours (that
    # report names neither). Alone (`--trials 1`, one thread): 99.25% validation, 98.5% test;
    # on 8x8 digits as images 98.9% test (the old default space's 2.5-minute search: 98.9%).
    {"n_blocks": 3, "channels": 59, "channel_growth": 1.0, "kernel_size": 7, "dropout": 0.1,
     "optimizer": "adamw", "lr": 2.5e-3, "weight_decay": 1e-4, "batch_size": 64, "schedule": "cosine",
     **SEQUENCE_WINDOWS},
    # The CNN of the MNIST-1D paper (Greydanus 2020, 94%): 3 convolutions of 25 channels that
    # each halve the signal, first kernel 5, Adam at 1e-2 without weight decay (the space's
    # least, 1e-6), batch 100 (128 here), constant rate. Here: 98.25% validation in a 14 s trial.
    {"n_blocks": 3, "channels": 25, "channel_growth": 1.0, "kernel_size": 5, "dropout": 0.0,
     "optimizer": "adam", "lr": 1e-2, "weight_decay": 1e-6, "batch_size": 128, "schedule": "constant",
     **SEQUENCE_WINDOWS},
)

def check_number(name: str, value: Any, low: float, high: float = math.inf, *,
                 open_low: bool = False, open_high: bool = False) -> float:
    """`value` as a float when it lies between `low` and `high` (each bound included unless
    open), else a ConfigError naming it: 'dropout must be in [0, 1); got 1.2'."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    above = number > low if open_low else number >= low
    below = number < high if open_high else number <= high
    if not (above and below):
        if high == math.inf:
            accepted = f"{'>' if open_low else '>='} {low:g}"
        else:
            accepted = f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise ConfigError(f"{name} must be {accepted}; got {value!r}")
    return number


def half_up(x: float) -> int:
    return math.floor(x + 0.5)


class ConvBlock(nn.Module):
    """conv ('same') -> batch norm -> activation -> pool by 2 -> dropout, in 1-D or 2-D."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, kernel_size: int, *,
                 norm: str, activation: str, pool: str, dropout: float) -> None:
        super().__init__()
        conv, batch_norm, max_pool, avg_pool = (
            (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AvgPool1d) if dims == 1
            else (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d))
        # Batch norm subtracts the mean, so a bias before it would do nothing.
        self.conv = conv(in_channels, out_channels, kernel_size, padding="same", bias=norm == "none")
        self.norm = batch_norm(out_channels) if norm == "batch" else nn.Identity()
        self.activation = ACTIVATIONS[activation]()
        self.pool = {"max": max_pool, "avg": avg_pool}[pool](2) if pool != "none" else nn.Identity()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.pool(self.activation(self.norm(self.conv(x)))))


def conv_blocks(dims: int, in_channels: int, widths: list[int], size: tuple[int, ...], *, kernel_size: int,
                norm: str, activation: str, pool: str, dropout: float) -> nn.Sequential:
    """Blocks of `widths` channels on inputs of spatial `size`. A block pools only while every
    side stays at least 2 long, so small inputs take deep networks."""
    blocks = []
    for out_channels in widths:
        pooled = pool != "none" and min(size) // 2 >= 2
        blocks.append(ConvBlock(dims, in_channels, out_channels, kernel_size, norm=norm,
                                activation=activation, pool=pool if pooled else "none", dropout=dropout))
        size = tuple(s // 2 for s in size) if pooled else size
        in_channels = out_channels
    return nn.Sequential(*blocks)


class ChannelsFirst(nn.Module):
    """(batch, steps, features) from `_inputs.sequence_input` -> (batch, features, steps) for Conv1d."""

    def __init__(self, steps: nn.Module) -> None:
        super().__init__()
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.steps(x).transpose(1, 2)


class Resize(nn.Module):
    """Resize (batch, channels, *size) to a fixed spatial size; 'area' averages the pixels or
    samples each output covers, so shrinking does not alias."""

    def __init__(self, size: tuple[int, ...]) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.size, mode="area")


class PoolingHead(nn.Module):
    """Global average over positions -> optional hidden layer -> raw outputs."""

    def __init__(self, channels: int, hidden: int, output_dim: int, activation: str, dropout: float) -> None:
        super().__init__()
        self.hidden = (nn.Sequential(nn.Linear(channels, hidden), ACTIVATIONS[activation](), nn.Dropout(dropout))
                       if hidden > 0 else nn.Identity())
        self.out = nn.Linear(hidden if hidden > 0 else channels, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x.flatten(2).mean(2)))


class CNN(nn.Module):
    def __init__(self, inputs: nn.Module, blocks: nn.Sequential, head: PoolingHead) -> None:
        super().__init__()
        self.inputs, self.blocks, self.head = inputs, blocks, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.inputs(x)))


def block_widths(params: Mapping[str, Any]) -> list[int]:
    """Channels per block after compound scaling: round(n_blocks * depth_mult) blocks, the first
    round(channels * width_mult) wide, each next one `channel_growth` times wider, at most
    MAX_CHANNELS."""
    n_blocks = int(check_number("n_blocks", params["n_blocks"], 1))
    depth = check_number("depth_mult", params["depth_mult"], 0.0, open_low=True)
    width = check_number("width_mult", params["width_mult"], 0.0, open_low=True)
    growth = check_number("channel_growth", params["channel_growth"], 0.0, open_low=True)
    first = max(1, half_up(check_number("channels", params["channels"], 1) * width))
    return [min(MAX_CHANNELS, max(1, half_up(first * growth ** i))) for i in range(max(1, half_up(n_blocks * depth)))]


def input_stage(meta: ModelMeta, params: Mapping[str, Any]) -> tuple[nn.Module, int, tuple[int, ...]]:
    """The module that turns raw samples into (batch, channels, *size) for the first block,
    its channels and its spatial size."""
    resolution = check_number("resolution_mult", params["resolution_mult"], 0.0, 1.0, open_low=True)
    if meta.kind == "image":
        if len(meta.shape) != 3:
            raise ConfigError(f"cnn takes images of shape (channels, height, width); got {meta.shape}")
        channels, size, stages = meta.shape[0], tuple(meta.shape[1:]), []
    else:
        steps, channels, length = sequence_input(meta, params, int(check_number("embed_dim", params["embed_dim"], 1)))
        size, stages = (length,), [ChannelsFirst(steps)]
    if resolution < 1.0 and meta.kind in ("image", "signal"):
        size = tuple(max(1, half_up(s * resolution)) for s in size)
        stages.append(Resize(size))
    return nn.Sequential(*stages), channels, size


def build(params: Mapping[str, Any], meta: ModelMeta) -> nn.Module:
    check_choice("cnn data kind", meta.kind, KINDS)
    check_choice("activation", params["activation"], ACTIVATIONS)
    check_choice("norm", params["norm"], NORMS)
    check_choice("pool", params["pool"], POOLS)
    dropout = check_number("dropout", params["dropout"], 0.0, 1.0, open_high=True)
    kernel_size = int(check_number("kernel_size", params["kernel_size"], 1))
    head_units = int(check_number("head_units", params["head_units"], 0))
    widths = block_widths(params)
    inputs, channels, size = input_stage(meta, params)
    blocks = conv_blocks(len(size), channels, widths, size, kernel_size=kernel_size, norm=params["norm"],
                         activation=params["activation"], pool=params["pool"], dropout=dropout)
    return CNN(inputs, blocks, PoolingHead(widths[-1], head_units, meta.output_dim, params["activation"], dropout))


def shape_of_weights(state: Mapping[str, Any]) -> dict[str, Any]:
    """The shape parameters of the cnn whose state dict `state` is, with both multipliers at 1
    (their effect is in the widths); empty when the names are not a cnn's or the widths follow
    no constant growth from the first block."""
    convs = []
    while f"blocks.{len(convs)}.conv.weight" in state:
        convs.append(tuple(state[f"blocks.{len(convs)}.conv.weight"].shape))
    if not convs or "head.out.weight" not in state:
        return {}
    widths = [c[0] for c in convs]
    shape: dict[str, Any] = {
        "n_blocks": len(widths), "channels": widths[0],
        "channel_growth": widths[1] / widths[0] if len(widths) > 1 else 1.0,
        "kernel_size": convs[0][-1], "norm": "batch" if "blocks.0.norm.running_mean" in state else "none",
        "head_units": int(state["head.hidden.0.weight"].shape[0]) if "head.hidden.0.weight" in state else 0,
        "depth_mult": 1.0, "width_mult": 1.0,
    }
    if block_widths(shape) != widths:
        return {}
    embedding = state.get("inputs.0.steps.embedding.weight")
    if embedding is not None:
        shape.update(vocab_size=int(embedding.shape[0]), embed_dim=int(embedding.shape[1]))
    return shape


register_family(Family("cnn", build, DEFAULTS, SPACE, data_kinds=KINDS,
                       shape_keys=("n_blocks", "channels", "channel_growth", "kernel_size", "norm", "head_units",
                                   "depth_mult", "width_mult", "embed_dim", "vocab_size"),
                       shape_of_weights=shape_of_weights, starting_points=STARTING_POINTS))
