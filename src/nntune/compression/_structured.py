"""Structured pruning: whole hidden neurons go and the MLP is rebuilt with narrower layers.

Neurons are pruned per index set. A plain block's outputs are a set of their own. A block
with a skip connection (residual: true, input and output equally wide) adds its output to
its input neuron by neuron, so both live in one set, the residual stream: a run of such
blocks shares it with the block before the run. A stream neuron is ranked by its criterion
summed over every layer that writes (incoming) or reads (outgoing) it, and every coupled
layer keeps the same neurons, so each add stays valid. A stream that starts at the input
features (the first block is residual) cannot lose neurons: they are the data's columns.

The model family decides from the widths which blocks add their input. The kept counts
are therefore chosen so that coupled layers stay equally wide and no two uncoupled neighbours
become equally wide (that would give a block a shortcut it never had).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, NntuneError
from ..models import ModelMeta
from ..search import make_module
from ._surgery import linears


@dataclass
class NeuronSet:
    """Hidden blocks whose outputs are one index set, and whether the inputs pin it."""

    blocks: list[int]
    width: int
    pinned: bool = False


def neuron_sets(module: nn.Module) -> list[NeuronSet]:
    """The index sets of an MLP's hidden neurons, in forward order."""
    sets: list[NeuronSet] = []
    for i, block in enumerate(module.blocks):
        if block.residual and sets:
            sets[-1].blocks.append(i)
        else:  # a block without a shortcut starts a set; a residual first block shares the inputs'
            sets.append(NeuronSet([i], block.linear.out_features, pinned=block.residual))
    return sets


def kept_counts(sets: list[NeuronSet], share: float, input_dim: int, residual: bool) -> list[int]:
    """Neurons each set keeps when `share` of them go, nudged by one where two uncoupled
    neighbours would become equally wide in a network whose blocks add their input."""
    counts, before = [], input_dim
    for group in sets:
        count = group.width if group.pinned else max(1, round(group.width * (1.0 - share)))
        if residual and not group.pinned and count == before:
            if count < group.width:
                count += 1
            elif count > 1:
                count -= 1
            else:
                raise ConfigError("structured pruning would leave a one-neuron layer beside another, which "
                                  "would give it a skip connection it never had: choose a lower sparsity")
        counts.append(count)
        before = count
    return counts


def _scores(module: nn.Module, group: NeuronSet, criterion: str) -> torch.Tensor:
    """One score per neuron of the set: the L2 norms of its weights in or out, summed over
    the set's layers (for a residual stream, every layer that writes or reads it)."""
    layers = linears(module)  # hidden blocks in order, then the head
    if criterion == "incoming":
        return sum(layers[i].weight.norm(dim=1) for i in group.blocks)
    return sum(layers[i + 1].weight.norm(dim=0) for i in group.blocks)


@torch.no_grad()
def shrink(module: nn.Module, params: dict[str, Any], sets: list[NeuronSet], counts: list[int],
           criterion: str, meta: ModelMeta) -> tuple[nn.Module, dict[str, Any]]:
    """A new, narrower MLP holding the `counts` best neurons of each set of `module`."""
    rows_of: dict[int, torch.Tensor] = {}
    for group, count in zip(sets, counts, strict=True):
        kept = _scores(module, group, criterion).topk(count).indices.sort().values
        rows_of.update({i: kept for i in group.blocks})
    widths = [len(rows_of[i]) for i in range(len(module.blocks))]
    params = {**params, **{f"units_{i}": w for i, w in enumerate(widths)}}
    smaller, params = make_module("mlp", params, meta)
    shortcuts = [b.residual for b in module.blocks]
    if [b.residual for b in smaller.blocks] != shortcuts:  # kept_counts exists to prevent this
        raise NntuneError(f"pruning changed which blocks add their input ({shortcuts} -> "
                          f"{[b.residual for b in smaller.blocks]}); please report this as a bug")
    inputs = torch.arange(meta.input_dim)
    for i, (old, new) in enumerate(zip(module.blocks, smaller.blocks, strict=True)):
        rows = rows_of[i]
        new.linear.weight.copy_(old.linear.weight[rows][:, inputs])
        new.linear.bias.copy_(old.linear.bias[rows])
        for name, tensor in old.norm.state_dict().items():  # batch or layer norm: per neuron
            target = new.norm.state_dict()[name]
            target.copy_(tensor if tensor.dim() == 0 else tensor[rows])
        inputs = rows
    smaller.head.weight.copy_(module.head.weight[:, inputs])
    smaller.head.bias.copy_(module.head.bias)
    return smaller.eval(), params
