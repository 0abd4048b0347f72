"""`transformer`: an encoder-only transformer over texts, signals or time-series windows.

Steps from `sequence_input` are projected to `d_model` wide vectors (texts are embedded at
that width directly), given positions, passed through `layers` encoder layers and averaged
over the steps that hold data (padding excluded) before one linear output layer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ._inputs import TEXT_SPACE, TokenEmbedding, sequence_input
from ._registry import Family, ModelMeta, register_family

POSITIONALS = ("sinusoidal", "learned")

DEFAULTS = {"d_model": 64, "heads": 4, "layers": 2, "ff_mult": 2, "dropout": 0.1, "positional": "sinusoidal"}

# Small encoders suit the data sets a search trains many times: on SMS spam one trial of the
# old space (up to 256 wide and 4 layers) took the whole 3 minutes (docs/benchmarks.md), so the
# widths stop at 128 and the depth at 3; light dropout.
SPACE = {
    "d_model": {"type": "int", "low": 32, "high": 128, "log": True},
    "heads": {"type": "categorical", "choices": [1, 2, 4, 8]},
    "layers": {"type": "int", "low": 1, "high": 3},
    "ff_mult": {"type": "int", "low": 1, "high": 4},
    "dropout": {"type": "float", "low": 0.0, "high": 0.3},
    "positional": {"type": "categorical", "choices": list(POSITIONALS)},
}

STARTING_POINTS = (
    # Keras's text-classification transformer (Nandan, keras.io examples, 2020): one encoder
    # layer 32 wide with 2 heads and a 32-wide feed-forward, mean pooling, dropout 0.1, Adam at
    # 1e-3, batch 32; texts cut at 64 tokens of a 10,000-word vocabulary as in the SMS rnn
    # recipe, a series' whole default window (lookback 24). Alone on SMS spam (`--trials 1`, at
    # most 30 epochs): 98.2% test, where the default 3-minute search reached 97.2%.
    {"d_model": 32, "heads": 2, "layers": 1, "ff_mult": 1, "dropout": 0.1, "positional": "sinusoidal",
     "seq_len": 64, "vocab_size": 10000, "lookback": 24, "optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-6,
     "batch_size": 32, "schedule": "constant"},
)

# Entries a run adds to SPACE for one kind of data (the default space is the same for all).
KIND_SPACE = {"text": dict(TEXT_SPACE)}


def model_width(d_model: int, heads: int) -> int:
    """`d_model` rounded up to a multiple of `heads` (attention splits the width evenly among
    the heads): a searched width and head count then always combine instead of failing."""
    if d_model < 1 or heads < 1:
        raise ConfigError(f"transformer needs d_model >= 1 and heads >= 1; got d_model={d_model}, heads={heads}")
    return math.ceil(d_model / heads) * heads


def sinusoidal_positions(steps: int, width: int) -> torch.Tensor:
    """(1, steps, width): sines and cosines of geometrically spaced frequencies (Vaswani et al.)."""
    position = torch.arange(steps, dtype=torch.float32).unsqueeze(1)
    rates = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    table = torch.zeros(steps, width)
    table[:, 0::2] = torch.sin(position * rates)
    table[:, 1::2] = torch.cos(position * rates[: width // 2])
    return table.unsqueeze(0)


class TransformerNet(nn.Module):
    def __init__(self, steps_in: nn.Module, features: int, steps: int, output_dim: int,
                 params: Mapping[str, Any]) -> None:
        super().__init__()
        width = model_width(int(params["d_model"]), int(params["heads"]))
        layers, ff_mult = int(params["layers"]), int(params["ff_mult"])
        if layers < 1 or ff_mult < 1:
            raise ConfigError(f"transformer needs layers >= 1 and ff_mult >= 1; got layers={layers}, "
                              f"ff_mult={ff_mult}")
        dropout = float(params["dropout"])
        self.steps_in = steps_in
        self.project = nn.Identity() if features == width else nn.Linear(features, width)
        if params["positional"] == "learned":
            self.positions = nn.Parameter(torch.randn(1, steps, width) * 0.02)
        else:  # derived from the shape, not learned: kept out of the state dict
            self.register_buffer("positions", sinusoidal_positions(steps, width), persistent=False)
        # Pre-norm layers train stably without a learning-rate warm-up. Nested tensors (a
        # speed-up for padded batches at inference) are off so training and inference
        # compute the same way.
        layer = nn.TransformerEncoderLayer(width, int(params["heads"]), ff_mult * width, dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(width), enable_nested_tensor=False)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = self.project(self.steps_in(x))
        steps = self.dropout(steps + self.positions[:, :steps.shape[1]])
        if isinstance(self.steps_in, TokenEmbedding):
            tokens = self.steps_in.tokens(x)
            # An empty text would have every key masked, which makes attention NaN: it may
            # attend to its first (padding) step; the pooling below still ignores it.
            ignore = ~tokens
            ignore[:, 0] &= tokens.any(dim=1)
            encoded = self.encoder(steps, src_key_padding_mask=ignore)
            weights = tokens.unsqueeze(-1).to(encoded.dtype)
            pooled = (encoded * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        else:
            pooled = self.encoder(steps).mean(dim=1)
        return self.head(self.dropout(pooled))


def build(params: Mapping[str, Any], meta: ModelMeta) -> nn.Module:
    check_choice("positional", params["positional"], POSITIONALS)
    width = model_width(int(params["d_model"]), int(params["heads"]))
    steps_in, features, steps = sequence_input(meta, params, width)
    return TransformerNet(steps_in, features, steps, meta.output_dim, params)


register_family(Family("transformer", build, DEFAULTS, SPACE, data_kinds=("text", "signal", "timeseries"),
                       shape_keys=("d_model", "heads", "layers", "ff_mult", "positional", "vocab_size",
                                   "seq_len", "lookback"),
                       starting_points=STARTING_POINTS))
