"""`rnn`: an LSTM or GRU over texts, signals, time-series windows or image rows.

The network reads the sequence that `sequence_input` makes and classifies (or regresses) from
the last layer's final hidden state: for a bidirectional network both directions' final
states, the backward one having read the sequence from its end to its start.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ..errors import ConfigError, check_choice
from ._inputs import TEXT_SPACE, TokenEmbedding, sequence_input
from ._registry import Family, ModelMeta, register_family

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}

DEFAULTS = {"cell": "gru", "layers": 1, "hidden": 64, "bidirectional": False, "dropout": 0.0, "embed_dim": 64}

# Where good networks lay on texts (docs/benchmarks.md, SMS spam): the default space, which
# reached 1-3 layers of up to 256 units, fitted 3 trials in 3 minutes (97.4%); one layer of
# 32-128 units with dropout up to 0.3 fitted cheaper trials and reached 98.2% in 2. So one or two
# layers (the common range; a third costs the most), 32-128 units, dropout up to 0.3.
SPACE = {
    "cell": {"type": "categorical", "choices": ["lstm", "gru"]},
    "layers": {"type": "int", "low": 1, "high": 2},
    "hidden": {"type": "int", "low": 32, "high": 128, "log": True},
    "bidirectional": {"type": "categorical", "choices": [False, True]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.3},
}

STARTING_POINTS = (
    # The text recipe of nntune's narrowed SMS search (docs/benchmarks.md, `sms-rnn-narrow`:
    # 98.2%): one bidirectional GRU layer, texts cut at 64 tokens of a 10,000-word vocabulary,
    # Adam at a constant rate, batch 64; width, rate and dropout at the middle (on a log scale)
    # of the ranges it searched; a series' whole default window. Alone on SMS (`--trials 1`,
    # at most 30 epochs): 97.8% test in 71 s, where the default 3-minute search reached 97.4%.
    {"cell": "gru", "layers": 1, "hidden": 64, "bidirectional": True, "dropout": 0.1,
     "seq_len": 64, "vocab_size": 10000, "lookback": 24, "optimizer": "adam", "lr": 3e-3, "weight_decay": 1e-6,
     "batch_size": 64, "schedule": "constant"},
)

# Entries a run adds to SPACE for one kind of data (the default space is the same for all).
KIND_SPACE = {"text": {**TEXT_SPACE, "embed_dim": {"type": "int", "low": 16, "high": 256, "log": True}}}


class RecurrentNet(nn.Module):
    def __init__(self, steps_in: nn.Module, features: int, output_dim: int, params: Mapping[str, Any]) -> None:
        super().__init__()
        layers, hidden = int(params["layers"]), int(params["hidden"])
        if layers < 1 or hidden < 1:
            raise ConfigError(f"rnn needs layers >= 1 and hidden >= 1; got layers={layers}, hidden={hidden}")
        self.steps_in = steps_in
        self.cell = params["cell"]
        self.directions = 2 if params["bidirectional"] else 1
        dropout = float(params["dropout"])
        # The cells' own dropout acts between stacked layers only; one layer would warn.
        self.rnn = CELLS[self.cell](features, hidden, num_layers=layers, batch_first=True,
                                    bidirectional=self.directions == 2, dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.directions * hidden, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = self.steps_in(x)
        if isinstance(self.steps_in, TokenEmbedding):
            # Texts are padded at the end: packing by length makes each direction's final
            # state the one at the text's own last token, not after a run of [PAD]s. An empty
            # text keeps one (padding) step, as a length must be at least 1.
            lengths = self.steps_in.tokens(x).sum(dim=1).clamp(min=1).cpu()
            steps = pack_padded_sequence(steps, lengths, batch_first=True, enforce_sorted=False)
        _, final = self.rnn(steps)
        if self.cell == "lstm":
            final = final[0]  # (hidden state, cell state)
        # final: (layers * directions, batch, hidden); the last layer's directions come last.
        last = final[-self.directions:].transpose(0, 1).flatten(1)
        return self.head(self.dropout(last))


def build(params: Mapping[str, Any], meta: ModelMeta) -> nn.Module:
    check_choice("cell", params["cell"], CELLS)
    steps_in, features, _ = sequence_input(meta, params, int(params["embed_dim"]))
    return RecurrentNet(steps_in, features, meta.output_dim, params)


register_family(Family("rnn", build, DEFAULTS, SPACE, data_kinds=("text", "signal", "timeseries", "image"),
                       shape_keys=("cell", "layers", "hidden", "bidirectional", "embed_dim", "vocab_size"),
                       starting_points=STARTING_POINTS))
