"""Magnitude pruning of an MLP, in a few steps with brief fine-tuning between them.

Unstructured: the smallest weights of all Linear layers together (L1 magnitude) are zeroed
until `sparsity` of them are zero; the masks are made permanent. The file keeps its size
(weights are stored dense) but compresses well and suits sparse kernels.

Structured: whole hidden neurons go. Each hidden layer keeps round(width * (1 - sparsity))
neurons, ranked by the L2 norm of their incoming or outgoing weights; the Linear layers, the
norm layers after them and the next layer's inputs are rebuilt smaller, so the saved model
has fewer parameters and runs faster. Layers joined by skip connections are pruned as one
(see `_structured`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from ..errors import ConfigError, check_choice
from ..models import Ensemble, ModelMeta
from ..models.mlp import beyond_plain
from ..training import fit
from ._run import RunData
from ._structured import kept_counts, neuron_sets, shrink
from ._surgery import linears, plain_copy

CRITERIA = ("outgoing", "incoming")


def prune(run: RunData, sparsity: float, structured: bool = False, criterion: str = "outgoing",
          steps: int = 3, finetune_epochs: int = 3) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """Prune the run's model to `sparsity`; returns (module, params that rebuild it, details)."""
    check_choice("criterion", criterion, CRITERIA)
    run.require_mlp("prune")
    module, params = plain_copy(run.model.module, run.params)
    if structured and isinstance(module, Ensemble):
        raise ConfigError("structured pruning takes one network; this model averages "
                          f"{len(module.members)} fold models: prune it unstructured, or distill it into one "
                          "network (--method distill) and prune that")
    extras = beyond_plain(params)
    if structured and extras:  # the surgery rebuilds a plain MLP's blocks and head
        raise ConfigError(f"structured pruning works on a plain MLP; this model has {' and '.join(extras)}: "
                          "prune it unstructured, or distill it into a plain one (--method distill) and prune that")
    if structured:
        widths = [b.linear.out_features for b in module.blocks]
        module, params, shape = _structured(run, module, params, sparsity, criterion, steps, finetune_epochs)
        removed = 1.0 - sum(shape["widths_after"]) / sum(widths)
        return module, params, {"structured": True, "criterion": criterion, "widths_before": widths, **shape,
                                "sparsity": round(removed, 6), "steps": steps}
    zero_share = _unstructured(run, module, params, sparsity, steps, finetune_epochs)
    return module, params, {"structured": False, "sparsity": round(zero_share, 6), "steps": steps}


def _finetune(run: RunData, module: nn.Module, params: dict[str, Any], epochs: int, step: int) -> None:
    if epochs > 0:
        # fit seeds its batch order; dropout masks come from torch's global generator, which
        # differs from process to process unless seeded here.
        torch.manual_seed(run.seed + step)
        fit(module, run.model.head, run.X_train, run.y_train, params, epochs=epochs, seed=run.seed + step)


def _unstructured(run: RunData, module: nn.Module, params: dict[str, Any], sparsity: float,
                  steps: int, epochs: int) -> float:
    layers = [(layer, "weight") for layer in linears(module)]
    total = sum(layer.weight.numel() for layer, _ in layers)
    for step in range(1, steps + 1):
        # Earlier zeros are the smallest magnitudes, so each step's mask contains the last one.
        amount = round(total * sparsity * step / steps)
        torch_prune.global_unstructured(layers, pruning_method=torch_prune.L1Unstructured, amount=amount)
        _finetune(run, module, params, epochs, step)  # the masks stay applied while it trains
        for layer, name in layers:
            torch_prune.remove(layer, name)
    zeros = sum(int((layer.weight == 0).sum()) for layer, _ in layers)
    return zeros / total


def _structured(run: RunData, module: nn.Module, params: dict[str, Any], sparsity: float, criterion: str,
                steps: int, epochs: int) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    if not len(module.blocks):
        raise ConfigError("structured pruning removes hidden neurons; this model has no hidden layers "
                          "(n_layers 0): use unstructured pruning")
    sets = neuron_sets(module)
    if all(group.pinned for group in sets):
        raise ConfigError("structured pruning cannot remove any neuron: every hidden layer adds its input "
                          "(residual: true and as wide as the input features): use unstructured pruning")
    if not any(block.residual for block in module.blocks):
        # Switching the flag off changes nothing here, and keeps the smaller layers from
        # gaining a shortcut where two widths happen to become equal.
        params = {**params, "residual": False}
    meta = ModelMeta(int(run.model.info["input_dim"]), run.model.head.output_dim, run.model.task)
    for step in range(1, steps + 1):
        # Each step's share counts from the original widths; the sets keep their blocks.
        counts = kept_counts(sets, sparsity * step / steps, meta.input_dim, bool(params.get("residual")))
        module, params = shrink(module, params, sets, counts, criterion, meta)
        _finetune(run, module, params, epochs, step)
    streams = [group.blocks for group in sets if len(group.blocks) > 1 or group.pinned]
    pinned = [i for group in sets if group.pinned for i in group.blocks]
    return module, params, {"widths_after": [b.linear.out_features for b in module.blocks],
                            "residual_streams": streams, "pinned_blocks": pinned}
