"""`cnn_rnn`: for long signals and time-series windows, 1-D convolution blocks that each halve
the time axis, then an LSTM or GRU over the shorter sequence of learned features; its last
hidden state (both directions' when bidirectional) feeds a linear output.

The convolutions see local shape cheaply and shorten the sequence, so the recurrent layer,
which runs step by step, has fewer steps to take and a longer reach in time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ._inputs import sequence_input
from ._registry import Family, ModelMeta, register_family
from .cnn import ChannelsFirst, check_number, conv_blocks

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
KINDS = ("signal", "timeseries")

DEFAULTS = {
    "conv_blocks": 2, "channels": 32, "kernel_size": 5, "cell": "lstm", "hidden": 64,
    "bidirectional": False, "dropout": 0.0,
}

# Common practice for conv-recurrent hybrids (DeepConvLSTM and after): a few conv blocks,
# channels and hidden sizes on a log scale, kernels a little wider than for images.
SPACE = {
    "conv_blocks": {"type": "int", "low": 1, "high": 3},
    "channels": {"type": "int", "low": 8, "high": 128, "log": True},
    "kernel_size": {"type": "categorical", "choices": [3, 5, 7]},
    "cell": {"type": "categorical", "choices": ["lstm", "gru"]},
    "hidden": {"type": "int", "low": 16, "high": 256, "log": True},
    "bidirectional": {"type": "categorical", "choices": [False, True]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
}

STARTING_POINTS = (
    # A forecasting recipe: one conv block and a GRU over the whole default window (lookback 24,
    # two years of months), Adam at 1e-3, batch 32 (a series has few windows). Alone on the
    # airline series (`--trials 1`): test RMSE 19.4 in 8 s, against 50.0 for the seasonal naive
    # forecast and 22.0 for the 1-minute search of docs/benchmarks.md.
    {"conv_blocks": 1, "channels": 32, "kernel_size": 3, "cell": "gru", "hidden": 64, "bidirectional": False,
     "dropout": 0.0, "lookback": 24, "optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-6,
     "batch_size": 32, "schedule": "constant"},
    # DeepConvLSTM (Ordonez & Roggen 2016) for sensor signals: convolutions of 64 filters of
    # width 5 (4 in the paper, 3 here), an LSTM of 128, dropout 0.5, a rate of 1e-3 (RMSProp
    # there, Adam here), batch 100 (128 here); on a series, the same two-year window. On the
    # airline series the best of a 1-minute search's five trials (validation r2 0.85).
    {"conv_blocks": 3, "channels": 64, "kernel_size": 5, "cell": "lstm", "hidden": 128, "bidirectional": False,
     "dropout": 0.5, "lookback": 24, "optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-6, "batch_size": 128,
     "schedule": "constant"},
)


class CNNRNN(nn.Module):
    def __init__(self, inputs: nn.Module, blocks: nn.Sequential, rnn: nn.RNNBase, dropout: float,
                 output_dim: int) -> None:
        super().__init__()
        self.inputs, self.blocks, self.rnn = inputs, blocks, rnn
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        directions = 2 if rnn.bidirectional else 1
        self.out = nn.Linear(rnn.hidden_size * directions, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = self.blocks(self.inputs(x)).transpose(1, 2)
        _, state = self.rnn(steps)
        last = state[0] if isinstance(state, tuple) else state  # an LSTM's state is (h, c)
        return self.out(self.dropout(last.transpose(0, 1).flatten(1)))


def build(params: Mapping[str, Any], meta: ModelMeta) -> nn.Module:
    check_choice("cnn_rnn data kind", meta.kind, KINDS)
    check_choice("cell", params["cell"], CELLS)
    if params["bidirectional"] not in (True, False):
        raise ConfigError(f"bidirectional must be true or false; got {params['bidirectional']!r}")
    n_blocks = int(check_number("conv_blocks", params["conv_blocks"], 1))
    channels = int(check_number("channels", params["channels"], 1))
    hidden = int(check_number("hidden", params["hidden"], 1))
    kernel_size = int(check_number("kernel_size", params["kernel_size"], 1))
    dropout = check_number("dropout", params["dropout"], 0.0, 1.0, open_high=True)
    steps, in_channels, length = sequence_input(meta, params, 0)
    blocks = conv_blocks(1, in_channels, [channels] * n_blocks, (length,), kernel_size=kernel_size,
                         norm="batch", activation="relu", pool="max", dropout=dropout)
    rnn = CELLS[params["cell"]](channels, hidden, batch_first=True,
                                     bidirectional=bool(params["bidirectional"]))
    return CNNRNN(ChannelsFirst(steps), blocks, rnn, dropout, meta.output_dim)


def shape_of_weights(state: Mapping[str, Any]) -> dict[str, Any]:
    """The shape parameters of the cnn_rnn whose state dict `state` is (empty when the names
    are not a cnn_rnn's)."""
    n_blocks = 0
    while f"blocks.{n_blocks}.conv.weight" in state:
        n_blocks += 1
    if not n_blocks or "rnn.weight_hh_l0" not in state:
        return {}
    conv = state["blocks.0.conv.weight"]
    gates, hidden = state["rnn.weight_hh_l0"].shape
    return {"conv_blocks": n_blocks, "channels": int(conv.shape[0]), "kernel_size": int(conv.shape[-1]),
            "cell": "lstm" if gates == 4 * hidden else "gru", "hidden": int(hidden),
            "bidirectional": "rnn.weight_hh_l0_reverse" in state}


register_family(Family("cnn_rnn", build, DEFAULTS, SPACE, data_kinds=KINDS,
                       shape_keys=("conv_blocks", "channels", "kernel_size", "cell", "hidden", "bidirectional"),
                       shape_of_weights=shape_of_weights, starting_points=STARTING_POINTS))
