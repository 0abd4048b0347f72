"""`bag`: a fastText-style bag of n-grams over texts (Joulin et al., "Bag of Tricks for
Efficient Text Classification", 2017; subwords as in Bojanowski et al., 2017).

A text is the mean of the embeddings of its words and of its hashed word n-grams (bigrams,
trigrams), plus the mean over its words of their character n-grams' mean embedding; a linear
layer (or one small hidden layer) classifies that vector. Order beyond the n-grams is ignored,
which is why it trains in seconds and reads every token of a long text: its cost grows with
the tokens, not with a recurrence over them. The strong, cheap baseline text practitioners try
first, and nntune's default for text.

- ids are the encoder's (`data._text.TextEncoder`): [PAD]=0 never counts, ids at or above the
  tuned `vocab_size` become [UNK] (their character n-grams still count); `seq_len` does not
  apply: the bag reads the whole encoded text (the encoder keeps long texts long for it).
- word n-grams are hashed into `buckets` rows after the vocabulary's, as fastText does; an
  n-gram reaching into padding is left out. Character n-grams share those rows: the encoder
  hashes each vocabulary entry's n-grams (`ModelMeta.extra["subwords"]`) and the network keeps
  that table as a buffer, saved with its weights. Both hashes are fixed arithmetic, so a saved
  model computes the same rows in any process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ._inputs import PAD_ID, UNKNOWN_ID
from ._registry import Family, ModelMeta, register_family

DEFAULTS = {"embed_dim": 64, "ngrams": 2, "char_ngrams": True, "buckets": 16384, "hidden": 0, "dropout": 0.2}

# fastText's supervised setting: a linear layer over word bigrams and character n-grams. On SMS
# spam the validation split (900 messages) tells good configurations apart by one or two
# messages, so the search picks among them nearly at random: the space holds only good ones.
# Measured (three splits, 80% of the training rows each): character n-grams +0.3 points, a
# hidden layer -0.2, trigrams -0.2 at 1.5x the time, widths above 64 no better at 2x the time.
# Character n-grams and the linear head are defaults, searchable by name (char_ngrams, hidden).
# Buckets stay modest: nntune's optimizers update the whole table every step (dense gradients),
# so each row costs time, used or not; more of them keep a long text's bigrams apart.
SPACE = {
    "embed_dim": {"type": "int", "low": 16, "high": 64, "log": True},
    "ngrams": {"type": "int", "low": 1, "high": 2},
    "buckets": {"type": "categorical", "choices": [16384, 65536]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
}

# First trials (measured on the SMS spam collection, each on its own 80/20 split of the training
# rows, three seeds: 98.3-98.7% test accuracy where TF-IDF + logistic regression gets 96.8-97.2%):
# fastText's bigram bag with character n-grams under Adam at 3e-3, and a unigram bag at 1e-2
# (fastText's classifiers train in a few epochs at high rates). Coupled weight decay shrinks the
# embedding rows of rare words every step (Adam scales the decay up to the rate), so almost none.
STARTING_POINTS = (
    {"embed_dim": 64, "ngrams": 2, "buckets": 16384, "dropout": 0.2,
     "optimizer": "adam", "lr": 3e-3, "weight_decay": 1e-6, "batch_size": 64, "schedule": "constant",
     "vocab_size": 20000, "seq_len": 128},
    {"embed_dim": 32, "ngrams": 1, "buckets": 16384, "dropout": 0.3,
     "optimizer": "adam", "lr": 1e-2, "weight_decay": 1e-6, "batch_size": 32, "schedule": "constant",
     "vocab_size": 20000, "seq_len": 128},
)

HASH_PRIME = 1_000_003  # of the polynomial hash over an n-gram's ids (each step stays below 2**63)


def hashed_ngrams(ids: torch.Tensor, n: int, buckets: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The bucket (0..buckets-1) of each n-gram of `ids` (batch, length - n + 1), and whether it
    is one: False where it reaches into padding."""
    if ids.shape[1] < n:
        empty = ids.new_zeros((ids.shape[0], 0))
        return empty, empty.bool()
    windows = ids.unfold(1, n, 1)  # (batch, length - n + 1, n)
    code = torch.zeros_like(windows[..., 0])
    for k in range(n):
        code = (code * HASH_PRIME + windows[..., k]) % buckets
    return code, (windows != PAD_ID).all(dim=-1)


def mean_bag(rows: torch.Tensor, real: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """(batch, dim): for each line of `rows`, the mean of the `table` rows it names where `real`
    (zeros for a line with none). A sum with weights 1/count over the real entries only: padding
    is never looked up, and this backward pass is several times faster than the mean mode's."""
    counts = real.sum(dim=1)
    offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)[:-1]])
    weights = (1.0 / counts.clamp(min=1)).to(table.dtype).repeat_interleave(counts)
    return F.embedding_bag(rows[real], table, offsets, mode="sum", per_sample_weights=weights)


class BagOfNgrams(nn.Module):
    """Token ids (batch, length) -> outputs (batch, output_dim)."""

    def __init__(self, vocab_size: int, output_dim: int, params: Mapping[str, Any],
                 subwords: torch.Tensor | None = None) -> None:
        super().__init__()
        embed_dim, hidden, dropout = int(params["embed_dim"]), int(params["hidden"]), float(params["dropout"])
        self.vocab_size, self.ngrams = vocab_size, int(params["ngrams"])
        hashed = self.ngrams > 1 or subwords is not None
        self.buckets = int(params["buckets"]) if hashed else 0
        # Rows: the vocabulary (row 0, padding, is never read), then the hash buckets.
        self.embedding = nn.Embedding(vocab_size + self.buckets, embed_dim)
        # fastText's start: small uniform vectors, which the first steps move far.
        nn.init.uniform_(self.embedding.weight, -1.0 / embed_dim, 1.0 / embed_dim)
        # (vocabulary entries, slots): each entry's character n-gram hashes, -1 past its last.
        self.register_buffer("subwords", subwords)
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(embed_dim, hidden), nn.ReLU(), nn.Dropout(dropout)]
        self.head = nn.Sequential(*layers, nn.Linear(hidden or embed_dim, output_dim))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.long()
        words = torch.where(ids >= self.vocab_size, torch.full_like(ids, UNKNOWN_ID), ids)
        rows, real = [words], [ids != PAD_ID]
        for n in range(2, self.ngrams + 1):
            buckets, is_ngram = hashed_ngrams(words, n, self.buckets)
            rows.append(buckets + self.vocab_size)
            real.append(is_ngram)
        text = mean_bag(torch.cat(rows, dim=1), torch.cat(real, dim=1), self.embedding.weight)
        if self.subwords is not None:
            text = text + self.subword_mean(ids)
        return self.head(text)

    def subword_mean(self, ids: torch.Tensor) -> torch.Tensor:
        """Each text's mean over its tokens of the mean embedding of the token's character
        n-grams. Each distinct id of the batch is embedded once, however often it occurs."""
        distinct, position = torch.unique(ids, return_inverse=True)
        hashes = self.subwords[distinct].long()  # (distinct ids, slots)
        per_token = mean_bag(hashes % self.buckets + self.vocab_size, hashes >= 0, self.embedding.weight)
        return mean_bag(position, ids != PAD_ID, per_token)


def build(params: Mapping[str, Any], meta: ModelMeta) -> nn.Module:
    if meta.kind != "text":
        raise ConfigError(f"the bag family takes text (token ids); got {meta.kind} data")
    if meta.vocab_size < 2:  # else every token would silently become [UNK]
        raise ConfigError(f"a text model needs the vocabulary size (ModelMeta.vocab_size); got {meta.vocab_size}")
    sizes = {k: params[k] for k in ("embed_dim", "ngrams", "buckets")}
    if any(int(v) != v or v < 1 for v in sizes.values()):
        raise ConfigError(f"bag needs whole numbers >= 1 for embed_dim, ngrams and buckets; got {sizes}")
    if int(params["hidden"]) < 0 or not 0.0 <= float(params["dropout"]) < 1.0:
        raise ConfigError(f"bag needs hidden >= 0 and dropout in [0, 1); got hidden={params['hidden']}, "
                          f"dropout={params['dropout']}")
    vocab = max(min(int(params.get("vocab_size") or meta.vocab_size), meta.vocab_size), 2)
    subwords = _subword_table(meta) if params["char_ngrams"] else None
    return BagOfNgrams(vocab, meta.output_dim, params, subwords)


def _subword_table(meta: ModelMeta) -> torch.Tensor:
    """A copy of the encoder's character n-gram table (the network owns its buffers: loading a
    state dict must never write into the encoder's), or zeros of its size, which a saved
    model's state dict fills."""
    table = meta.extra.get("subwords")
    if table is not None:
        return torch.as_tensor(table, dtype=torch.int32).clone()
    if "subword_slots" in meta.extra:
        return torch.zeros(meta.vocab_size, int(meta.extra["subword_slots"]), dtype=torch.int32)
    raise ConfigError("char_ngrams needs the character n-grams of the vocabulary (ModelMeta.extra['subwords'], "
                      "from TextEncoder(subwords=True), as load_text makes it); or set char_ngrams to False")


register_family(Family("bag", build, DEFAULTS, SPACE, data_kinds=("text",),
                       shape_keys=("embed_dim", "ngrams", "char_ngrams", "buckets", "hidden", "vocab_size"),
                       starting_points=STARTING_POINTS))
