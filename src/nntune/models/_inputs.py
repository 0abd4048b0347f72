"""Turning one kind of input into a sequence of vectors (batch, steps, features), shared by the
sequence families (rnn, transformer, and cnn on text).

- text: token ids (batch, length) -> an embedding; ids at or above the tuned `vocab_size`
  become the unknown id and the first `seq_len` tokens are kept, so vocabulary and length are
  tunable without tokenizing again;
- signals and time-series windows (batch, channels, length) -> (batch, length, channels), the
  last `lookback` steps only (the most recent ones for a forecast);
- images (batch, channels, height, width) -> rows as steps: (batch, height, channels * width).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ._registry import ModelMeta

PAD_ID, UNKNOWN_ID = 0, 1  # the text encoder's [PAD] and [UNK]

# Search entries for text that the sequence families share. Not in their default spaces (those
# are the same for every kind): a run on text adds them. Choices above the data's vocabulary or
# length are clipped to it, so they are safe for any text.
TEXT_SPACE = {
    "vocab_size": {"type": "categorical", "choices": [2000, 5000, 20000]},
    "seq_len": {"type": "categorical", "choices": [32, 64, 128]},
}


class TokenEmbedding(nn.Module):
    """Token ids -> vectors, with the vocabulary clipped to the `vocab_size` most frequent
    tokens (the encoder numbers tokens by frequency) and sequences cut to `seq_len`."""

    def __init__(self, vocab_size: int, dim: int, seq_len: int) -> None:
        super().__init__()
        self.vocab_size, self.seq_len = vocab_size, seq_len
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=PAD_ID)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids[:, :self.seq_len].long()
        return self.embedding(torch.where(ids >= self.vocab_size, torch.full_like(ids, UNKNOWN_ID), ids))

    def tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """True at the steps of `forward`'s output that hold a token, False at padding."""
        return ids[:, :self.seq_len] != PAD_ID


class ToSteps(nn.Module):
    """(batch, channels, length) or (batch, channels, height, width) -> (batch, steps, features),
    keeping the last `lookback` steps."""

    def __init__(self, lookback: int | None) -> None:
        super().__init__()
        self.lookback = lookback

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # images: each row of pixels is a step
            x = x.permute(0, 2, 1, 3).flatten(2)
        else:
            x = x.transpose(1, 2)
        return x[:, -self.lookback:] if self.lookback else x


def sequence_input(meta: ModelMeta, params: Mapping[str, Any], embed_dim: int) -> tuple[nn.Module, int, int]:
    """The module that makes (batch, steps, features) of this kind's input, the number of
    features per step, and the number of steps."""
    shape = meta.shape
    if meta.kind == "text":
        if meta.vocab_size < 2:  # else every token would silently become [UNK]
            raise ConfigError(f"a text model needs the vocabulary size (ModelMeta.vocab_size); got {meta.vocab_size}")
        vocab = min(int(params.get("vocab_size") or meta.vocab_size), meta.vocab_size)
        seq_len = min(int(params.get("seq_len") or shape[-1]), shape[-1])
        return TokenEmbedding(max(vocab, 2), embed_dim, seq_len), embed_dim, seq_len
    if meta.kind in ("signal", "timeseries") and len(shape) == 2:
        lookback = min(int(params.get("lookback") or shape[1]), shape[1])
        return ToSteps(lookback), shape[0], lookback
    if meta.kind == "image" and len(shape) == 3:
        return ToSteps(None), shape[0] * shape[2], shape[1]
    raise ConfigError(f"a sequence model takes text, signals, time series or images; got {meta.kind} "
                      f"samples of shape {shape}")


class LastValueSkip(nn.Module):
    """A forecaster that predicts the change from the window's last value (of the target's
    channel) instead of the level: the network sees the window minus its last values and its
    output is added to a learned affine map of the last value.

    Series with a trend leave the range of the training period (airline passengers grow every
    year): a network fed levels must extrapolate, one fed changes need not. The affine map
    (scale 1, shift 0 at the start) absorbs the small difference between the encoder's scaling
    of the inputs and the head's standardization of the target.
    """

    def __init__(self, net: nn.Module, channel: int) -> None:
        super().__init__()
        self.net, self.channel = net, channel
        self.scale = nn.Parameter(torch.ones(1))
        self.shift = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = x[..., -1:]
        level = last[:, self.channel]  # (batch, 1)
        return self.net(x - last) + self.scale * level + self.shift
