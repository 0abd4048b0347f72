"""Dynamic int8 quantization of the Linear layers, and how such a model is stored and rebuilt.

Weights become int8 with one scale per layer; activations are quantized on the fly at each
call, so no calibration data is needed. The model directory keeps the same safe format as
any other (safetensors + JSON, nothing executed on load), and `load` rebuilds the float
network from its params, quantizes it the same way and puts the stored values in. (A
TorchScript or pickled module would also reload, but loading either runs code from the file.)

Storage is three flat tensors, in the order of the layers that the params rebuild:

    int8     every quantized layer's weight values
    qparams  float64 (scale, zero point) per quantized layer
    float32  every quantized layer's bias, then the other float tensors (layer norm)

One tensor per layer and per statistic made a small model's file only half the float one:
safetensors writes a JSON entry of about 90 bytes per tensor, so two dozen tensors cost
more header than a 2,000-weight network has int8 values. The shapes need no storing: the
rebuilt network has them. Batch norm is folded into the Linear layers before quantizing
(see `fold_batch_norm`), so no per-neuron statistics stay behind in float32 either.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from ..errors import ModelDirError

PACKED = ("int8", "qparams", "float32")


def quantize_linears(module: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of every Linear (CPU only, as torch provides it)."""
    with warnings.catch_warnings():
        # torch marks its eager quantization API for a future move to torchao; it still ships.
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(module.cpu().eval(), {nn.Linear}, dtype=torch.qint8)


def _quantized_layers(module: nn.Module) -> dict[str, nn.Module]:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return {name: m for name, m in module.named_modules() if isinstance(m, DynamicLinear)}


def _other_tensors(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Parameters and buffers outside the quantized layers (those keep theirs packed)."""
    return [*module.named_parameters(), *module.named_buffers()]


def quantized_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The packed tensors for safetensors (see the module docstring); tensors of another
    dtype than float32 outside the quantized layers are kept under their own names."""
    values, qparams, floats = [], [], []
    for name, layer in _quantized_layers(module).items():
        weight, bias = layer.weight(), layer.bias()
        if weight.qscheme() != torch.per_tensor_affine:
            raise ModelDirError(f"layer '{name}' is quantized per channel; nntune stores per-tensor int8 only")
        values.append(weight.int_repr().reshape(-1))
        qparams += [weight.q_scale(), float(weight.q_zero_point())]
        if bias is not None:
            floats.append(bias.detach().reshape(-1))
    state = {}
    for name, tensor in _other_tensors(module):
        if tensor.dtype == torch.float32:
            floats.append(tensor.detach().reshape(-1))
        else:
            state[name] = tensor.detach().contiguous()
    return {**state, "int8": _cat(values, torch.int8), "qparams": torch.tensor(qparams, dtype=torch.float64),
            "float32": _cat(floats, torch.float32)}


@torch.no_grad()
def restore(module: nn.Module, state: dict[str, Any]) -> nn.Module:
    """Quantize a freshly built float `module` and load a stored quantized state into it."""
    missing = [k for k in PACKED if k not in state]
    if missing:
        raise ModelDirError(f"the stored int8 weights lack the tensor(s) {', '.join(missing)}: "
                            "the file was not written by this version of nntune's quantize")
    module = quantize_linears(module)
    values, qparams, floats = (_Reader(state[k]) for k in PACKED)
    for layer in _quantized_layers(module).values():
        shape = layer.weight().shape
        ints = values.take(shape.numel()).reshape(shape)
        scale, zero = qparams.take(2).tolist()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            weight = torch._make_per_tensor_quantized_tensor(ints, scale, int(zero))
        bias = layer.bias()
        layer.set_weight_bias(weight, None if bias is None else floats.take(bias.numel()).reshape(bias.shape))
    for name, tensor in _other_tensors(module):
        if tensor.dtype == torch.float32:
            tensor.copy_(floats.take(tensor.numel()).reshape(tensor.shape))
        elif name in state:
            tensor.copy_(state[name])
        else:
            raise ModelDirError(f"the stored int8 weights lack '{name}'")
    if not all(reader.done() for reader in (values, qparams, floats)):
        raise ModelDirError("the stored int8 weights hold more values than the network its params "
                            "describe: the weights file and model.json do not belong together")
    return module.eval()


def quantize(module: nn.Module) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """The quantized module and the state that `restore` rebuilds it from."""
    quantized = quantize_linears(module)
    return quantized, quantized_state(quantized)


def _cat(parts: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    return torch.cat(parts).contiguous() if parts else torch.zeros(0, dtype=dtype)


class _Reader:
    """Hands out consecutive slices of one flat stored tensor."""

    def __init__(self, flat: torch.Tensor) -> None:
        self.flat, self.at = flat.reshape(-1), 0

    def take(self, n: int) -> torch.Tensor:
        if self.at + n > len(self.flat):
            raise ModelDirError("the stored int8 weights hold fewer values than the network its params "
                                "describe: the weights file and model.json do not belong together")
        part = self.flat[self.at:self.at + n]
        self.at += n
        return part

    def done(self) -> bool:
        return self.at == len(self.flat)
