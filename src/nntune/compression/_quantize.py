"""Dynamic int8 quantization of the Linear layers, and how such a model is stored and rebuilt.

Weights become int8 with one scale per layer; activations are quantized on the fly at each
call, so no calibration data is needed. The model directory keeps the same safe format as
any other (safetensors + JSON, nothing executed on load): each quantized layer is stored as
its int8 values, scale, zero point and float bias, and `load` rebuilds the float network from
its params, quantizes it the same way and puts the stored values in. (A TorchScript or
pickled module would also reload, but loading either runs code from the file.)
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from ..errors import ModelDirError

QUANTIZED = {"qweight", "qscale", "qzero", "bias"}  # key suffixes of one quantized layer


def quantize_linears(module: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of every Linear (CPU only, as torch provides it)."""
    with warnings.catch_warnings():
        # torch marks its eager quantization API for a future move to torchao; it still ships.
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(module.cpu().eval(), {nn.Linear}, dtype=torch.qint8)


def _quantized_layers(module: nn.Module) -> dict[str, nn.Module]:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return {name: m for name, m in module.named_modules() if isinstance(m, DynamicLinear)}


def quantized_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Plain tensors for safetensors: int8 weights with scale and zero point, the rest as is."""
    state: dict[str, torch.Tensor] = {}
    for name, layer in _quantized_layers(module).items():
        weight, bias = layer.weight(), layer.bias()
        if weight.qscheme() != torch.per_tensor_affine:
            raise ModelDirError(f"layer '{name}' is quantized per channel; nntune stores per-tensor int8 only")
        state[f"{name}.qweight"] = weight.int_repr().contiguous()
        state[f"{name}.qscale"] = torch.tensor(weight.q_scale(), dtype=torch.float64)
        state[f"{name}.qzero"] = torch.tensor(weight.q_zero_point(), dtype=torch.int64)
        if bias is not None:
            state[f"{name}.bias"] = bias.detach().contiguous()
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        state[name] = tensor.detach().contiguous()
    return state


@torch.no_grad()
def restore(module: nn.Module, state: dict[str, Any]) -> nn.Module:
    """Quantize a freshly built float `module` and load a stored quantized state into it."""
    module = quantize_linears(module)
    used = set()
    for name, layer in _quantized_layers(module).items():
        try:
            values, scale, zero = (state[f"{name}.{k}"] for k in ("qweight", "qscale", "qzero"))
        except KeyError:
            raise ModelDirError(f"the stored int8 weights lack layer '{name}'") from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            weight = torch._make_per_tensor_quantized_tensor(values, float(scale), int(zero))
        layer.set_weight_bias(weight, state.get(f"{name}.bias"))
        used |= {f"{name}.{k}" for k in QUANTIZED}
    plain = dict([*module.named_parameters(), *module.named_buffers()])
    for name, tensor in state.items():
        if name in used:
            continue
        if name not in plain:
            raise ModelDirError(f"the stored weights hold '{name}', which the rebuilt network lacks")
        plain[name].copy_(tensor)
    return module.eval()


def quantize(module: nn.Module) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The quantized module and the state that `restore` rebuilds it from."""
    quantized = quantize_linears(module)
    return quantized, quantized_state(quantized)
