"""The mlp's modern parts: numerical embeddings of the numeric columns and TabM's
parameter-efficient ensembles, assembled from the libraries that define them.

- Numerical embeddings (Gorishniy et al. 2022, rtdl_num_embeddings): each numeric column becomes
  a small vector of periodic features (cos and sin of learned frequencies) passed through a
  per-column linear layer, so the first hidden layer sees smooth, high-frequency functions of
  each number instead of the number alone. The preprocessor puts the numeric columns first;
  the one-hot columns after them pass through unchanged.
- TabM (Gorishniy et al. 2024, the tabm package): k MLPs that share most weights, trained in
  one pass on the same batches, each with the loss on its own prediction; their predictions are
  averaged (probabilities for classification). `tabm` shares each layer's weight matrix and
  gives every member its own scalings and biases (BatchEnsemble), `mini` shares everything but
  one scaling of the inputs and the output layer, `packed` trains k independent MLPs.
"""

from __future__ import annotations

import rtdl_num_embeddings
import tabm
import torch
from torch import nn

EMBEDDINGS = ("none", "periodic", "plr", "plr_lite")
ENSEMBLES = ("tabm", "mini", "packed")
COMBINES = ("softmax", "sigmoid", "mean")
_EPS = 1e-7  # keeps log and logit finite where every member is certain


class NumericEmbedding(nn.Module):
    """Embeds the first `n_numeric` columns into `dim` values each; the other columns pass.

    periodic: cos/sin of `frequencies` learned frequencies, then a linear layer per column (PL);
    plr: the same followed by ReLU (PLR); plr_lite: one linear layer shared by every column
    (TabR's lite PLR, fewer parameters). `scale` is the standard deviation the frequencies start
    from (sigma in the paper), the setting that matters most.
    """

    def __init__(self, kind: str, n_numeric: int, dim: int, frequencies: int, scale: float) -> None:
        super().__init__()
        self.n_numeric = n_numeric
        self.dim = dim
        self.embed = rtdl_num_embeddings.PeriodicEmbeddings(
            n_numeric, dim, n_frequencies=frequencies, frequency_init_scale=scale,
            activation=kind != "periodic", lite=kind == "plr_lite")

    def width(self, input_dim: int) -> int:
        """The output width for `input_dim` input columns."""
        return self.n_numeric * self.dim + input_dim - self.n_numeric

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        numeric, rest = x[:, :self.n_numeric], x[:, self.n_numeric:]
        return torch.cat([self.embed(numeric).flatten(1), rest], dim=1)


def mean_prediction(outputs: torch.Tensor, combine: str) -> torch.Tensor:
    """The members' mean prediction from (batch, k, outputs), as outputs the head reads the
    same way as one network's: the log of the mean softmax, the logit of the mean sigmoid, or
    the mean value (the same rule as nntune's fold Ensemble)."""
    if combine == "mean":
        return outputs.mean(dim=1)
    if combine == "sigmoid":
        p = torch.sigmoid(outputs).mean(dim=1).clamp(_EPS, 1 - _EPS)
        return torch.log(p) - torch.log1p(-p)
    return torch.log(torch.softmax(outputs, dim=-1).mean(dim=1).clamp_min(_EPS))


def combine_for(task: str, output_dim: int) -> str:
    """How a task's member predictions are averaged: values, one logit (BCE) or class logits."""
    return "mean" if task == "regression" else "sigmoid" if output_dim == 1 else "softmax"


class TabularMLP(nn.Module):
    """An MLP with numerical embeddings in front and k TabM members (k = 1: one network).

    `blocks` and `head` are the mlp's, already turned into ensemble layers by `make_members`
    when k > 1. While training, the output is (batch, k, outputs), one prediction per member,
    and the trainer applies the loss to each (see MemberLoss); in eval mode it is the members'
    mean prediction (batch, outputs), so validation, early stopping, saving and predicting see
    one model.
    """

    def __init__(self, embedding: NumericEmbedding | None, blocks: nn.Sequential, head: nn.Module,
                 k: int, combine: str, member_scale: nn.Module | None = None) -> None:
        super().__init__()
        self.embedding = embedding
        self.member_scale = member_scale
        self.blocks = blocks
        self.head = head
        self.members = k
        self.combine = combine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embedding is not None:
            x = self.embedding(x)
        if self.members == 1:
            return self.head(self.blocks(x))
        x = x.unsqueeze(1).expand(-1, self.members, -1)  # every member sees the same rows
        if self.member_scale is not None:
            x = self.member_scale(x)
        out = self.head(self.blocks(x))
        return out if self.training else mean_prediction(out, self.combine)


def make_members(blocks: nn.Sequential, head: nn.Linear, k: int, ensemble: str,
                 chunks: list[int], embedded: bool) -> tuple[nn.Module, nn.Module | None]:
    """Turn the mlp's `blocks` (in place) and `head` into k members as TabM builds them; returns
    (the ensemble head, the per-member input scaling of `mini` or None).

    `chunks`: the widths of the input features (an embedded column counts its embedding
    width): each member's first scaling starts with one random value per feature, as TabM does.
    Random signs without embeddings, normal values with them (the tabm package's defaults).
    """
    start = "normal" if embedded else "random-signs"
    member_scale = None
    for i, block in enumerate(blocks):
        linear = block.linear
        if ensemble == "tabm":
            shared = tabm.LinearBatchEnsemble.from_linear(
                linear, k=k, scaling_init=(start, "ones") if i == 0 else "ones",
                first_scaling_init_chunks=chunks if i == 0 else None)
            with torch.no_grad():  # keep the mlp's own initialisation of the shared weights
                shared.weight.copy_(linear.weight)
                shared.bias.copy_(linear.bias.expand_as(shared.bias))
            block.linear = shared
        elif ensemble == "packed":
            block.linear = tabm.LinearEnsemble.from_linear(linear, k=k)
    if ensemble == "mini":
        member_scale = tabm.ElementwiseAffine((k, sum(chunks)), bias=False, scaling_init=start,
                                              scaling_init_chunks=chunks)
    # Norm layers keep statistics and affine weights per member.
    tabm.ensemble_batchnorm1d_layers_(blocks, k=k)
    tabm.ensemble_layernorm_layers_(blocks, k=k)
    return tabm.LinearEnsemble.from_linear(head, k=k), member_scale


class MemberLoss(nn.Module):
    """The loss of a TabM-style ensemble: each member's loss on its own prediction, averaged
    over members (TabM trains its members so, not on their mean prediction, which would let
    them co-adapt). Outputs of one network pass through unchanged."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    @classmethod
    def around(cls, loss: nn.Module, model: nn.Module) -> nn.Module:
        """`loss` wrapped for `model` if it trains several members, else `loss` itself."""
        return cls(loss) if getattr(model, "members", 1) > 1 else loss

    def forward(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if outputs.dim() != 3:  # eval mode: already the members' mean prediction
            return self.loss(outputs, target)
        k = outputs.shape[1]
        # Rows repeat member by member, matching outputs flattened to (batch * k, outputs).
        return self.loss(outputs.flatten(0, 1), target.repeat_interleave(k, dim=0))
