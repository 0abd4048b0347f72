"""Magnitude pruning of an MLP, in a few steps with brief fine-tuning between them.

Unstructured: the smallest weights of all Linear layers together (L1 magnitude) are zeroed
until `sparsity` of them are zero; the masks are made permanent. The file keeps its size
(weights are stored dense) but compresses well and suits sparse kernels.

Structured: whole hidden neurons go. Each hidden layer keeps round(width * (1 - sparsity))
neurons, ranked by the L2 norm of their incoming or outgoing weights; the Linear layers, the
norm layers after them and the next layer's inputs are rebuilt smaller, so the saved model
has fewer parameters and runs faster.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from ..errors import ConfigError, check_choice
from ..models import ModelMeta
from ..search import make_module
from ..training import fit
from ._run import RunData
from ._surgery import linears, plain_copy

CRITERIA = ("outgoing", "incoming")


def prune(run: RunData, sparsity: float, structured: bool = False, criterion: str = "outgoing",
          steps: int = 3, finetune_epochs: int = 3) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """Prune the run's model to `sparsity`; returns (module, params that rebuild it, details)."""
    check_choice("criterion", criterion, CRITERIA)
    run.require_mlp("prune")
    module, params = plain_copy(run.model.module, run.params)
    if structured:
        module, params, kept = _structured(run, module, params, sparsity, criterion, steps, finetune_epochs)
        widths = [b.linear.out_features for b in run.model.module.blocks]
        removed = 1.0 - sum(kept) / sum(widths)
        return module, params, {"structured": True, "criterion": criterion, "widths_before": widths,
                                "widths_after": kept, "sparsity": round(removed, 6), "steps": steps}
    zero_share = _unstructured(run, module, params, sparsity, steps, finetune_epochs)
    return module, params, {"structured": False, "sparsity": round(zero_share, 6), "steps": steps}


def _finetune(run: RunData, module: nn.Module, params: dict[str, Any], epochs: int, step: int) -> None:
    if epochs > 0:
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
                steps: int, epochs: int) -> tuple[nn.Module, dict[str, Any], list[int]]:
    blocks = list(module.blocks)
    if not blocks:
        raise ConfigError("structured pruning removes hidden neurons; this model has no hidden layers "
                          "(n_layers 0): use unstructured pruning")
    if any(block.residual for block in blocks):
        raise ConfigError("structured pruning cannot keep this model's skip connections (residual: true "
                          "adds a layer's input to its output neuron by neuron): use unstructured pruning")
    # No block adds its input, so switching the flag off changes nothing, and it keeps the
    # smaller layers from gaining a shortcut where two widths happen to become equal.
    params = {**params, "residual": False}
    widths = [block.linear.out_features for block in blocks]
    meta = ModelMeta(int(run.model.info["input_dim"]), run.model.head.output_dim, run.model.task)
    keep = widths
    for step in range(1, steps + 1):
        keep = [max(1, round(w * (1.0 - sparsity * step / steps))) for w in widths]
        module, params = _shrink(module, params, keep, criterion, meta)
        _finetune(run, module, params, epochs, step)
    return module, params, keep


def _neuron_norms(module: nn.Module, criterion: str) -> list[torch.Tensor]:
    """One score per hidden neuron: L2 norm of the weights into it, or out of it."""
    layers = linears(module)
    if criterion == "incoming":
        return [layer.weight.norm(dim=1) for layer in layers[:-1]]
    return [layer.weight.norm(dim=0) for layer in layers[1:]]


@torch.no_grad()
def _shrink(module: nn.Module, params: dict[str, Any], keep: list[int], criterion: str,
            meta: ModelMeta) -> tuple[nn.Module, dict[str, Any]]:
    """A new, narrower MLP holding the kept neurons' weights of `module`."""
    norms = _neuron_norms(module, criterion)
    kept = [norm.topk(k).indices.sort().values for norm, k in zip(norms, keep, strict=True)]
    params = {**params, **{f"units_{i}": k for i, k in enumerate(keep)}}
    smaller, params = make_module("mlp", params, meta)
    inputs = torch.arange(meta.input_dim)
    for old, new, rows in zip(module.blocks, smaller.blocks, kept, strict=True):
        new.linear.weight.copy_(old.linear.weight[rows][:, inputs])
        new.linear.bias.copy_(old.linear.bias[rows])
        for name, tensor in old.norm.state_dict().items():  # batch or layer norm: per neuron
            target = new.norm.state_dict()[name]
            target.copy_(tensor if tensor.dim() == 0 else tensor[rows])
        inputs = rows
    smaller.head.weight.copy_(module.head.weight[:, inputs])
    smaller.head.bias.copy_(module.head.bias)
    return smaller.eval(), params
