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

UNKNOWN_ID = 1  # the text encoder's [UNK]; 0 is [PAD]


class TokenEmbedding(nn.Module):
    """Token ids -> vectors, with the vocabulary clipped to the `vocab_size` most frequent
    tokens (the encoder numbers tokens by frequency) and sequences cut to `seq_len`."""

    def __init__(self, vocab_size: int, dim: int, seq_len: int) -> None:
        super().__init__()
        self.vocab_size, self.seq_len = vocab_size, seq_len
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids[:, :self.seq_len].long()
        return self.embedding(torch.where(ids >= self.vocab_size, torch.full_like(ids, UNKNOWN_ID), ids))


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
