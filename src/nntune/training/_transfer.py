"""Transfer learning: start a network from weights trained on another, related table.

The caller builds the network for the new task as usual, then `apply_pretrained` copies in
every tensor whose name and shape agree, leaves a differently sized output layer freshly
initialised (another number of classes), freezes the first hidden layers on request and
returns what `fit` needs: parameter groups (pretrained layers at a scaled learning rate) and
the frozen modules (kept in eval mode, so their batch-norm statistics do not move either).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import ConfigError

TRANSFER_DEFAULTS = {"freeze_layers": 0, "pretrained_lr_scale": 1.0}

# Freezing more than the first two layers leaves too little to adapt on a new table; gentle
# fine-tuning rates span two decades below the recipe's rate.
TRANSFER_SPACE = {
    "freeze_layers": {"type": "int", "low": 0, "high": 2},
    "pretrained_lr_scale": {"type": "float", "low": 0.01, "high": 1.0, "log": True},
}

WEIGHT_NORM_KEY = ".parametrizations."  # how torch names the tensors of a weight-normed layer
MAX_LISTED = 6  # mismatches named in one error; a wholly different network would list dozens


@dataclass
class Transfer:
    """What `apply_pretrained` did, and the arguments `fit` takes to fine-tune accordingly:
    `fit(..., param_groups=t.param_groups, frozen=t.frozen)`."""

    loaded: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    frozen: list[nn.Module] = field(default_factory=list)
    param_groups: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs: 'loaded 8 tensors; replaced head.weight, head.bias; froze 1 layer'."""
        parts = [f"loaded {len(self.loaded)} tensors"]
        if self.replaced:
            parts.append(f"replaced {', '.join(self.replaced)}")
        if self.frozen:
            parts.append(f"froze {len(self.frozen)} layer{'s' if len(self.frozen) > 1 else ''}")
        return "; ".join(parts)


def apply_pretrained(module: nn.Module, state: dict[str, torch.Tensor], *, freeze_layers: int = 0,
                     lr_scale: float = 1.0) -> Transfer:
    """Copy `state` into `module`, freeze its first `freeze_layers` hidden layers, and return
    the parameter groups and frozen modules for `fit`.

    Every tensor (parameters and buffers such as batch-norm statistics) must match by name and
    shape, except the output layer (the last Linear; `head` in an MLP) when only its number of
    outputs differs: that one is left as built and trains at the full rate. Called after the
    network is built and before `fit`.

    >>> t = apply_pretrained(model, nntune.predictor.load_pretrained(path), freeze_layers=1, lr_scale=0.1)
    >>> fit(model, head, X, y, recipe, param_groups=t.param_groups, frozen=t.frozen)
    """
    if not lr_scale > 0:
        raise ConfigError(f"pretrained_lr_scale must be > 0; got {lr_scale}")
    frozen = _layers_to_freeze(module, freeze_layers)
    own = module.state_dict()
    replaced = _replaced_head(module, own, state)
    _check_fit(own, state, replaced)
    loaded = [name for name in own if name not in replaced]
    module.load_state_dict({**own, **{name: state[name] for name in loaded}})

    for layer in frozen:
        layer.requires_grad_(False)
    trainable = {name: p for name, p in module.named_parameters() if p.requires_grad}
    return Transfer(
        loaded=loaded, replaced=replaced, frozen=frozen,
        param_groups=[
            {"params": [p for name, p in trainable.items() if name not in replaced], "lr_scale": float(lr_scale)},
            {"params": [p for name, p in trainable.items() if name in replaced], "lr_scale": 1.0},
        ])


def _layers_to_freeze(module: nn.Module, count: int) -> list[nn.Module]:
    """The first `count` hidden layers: the blocks of an nntune MLP."""
    if int(count) != count or count < 0:
        raise ConfigError(f"freeze_layers must be a whole number >= 0; got {count}")
    if count == 0:
        return []
    blocks = getattr(module, "blocks", None)
    if not isinstance(blocks, nn.Sequential):
        raise ConfigError(f"freeze_layers needs an nntune MLP (hidden layers in `blocks`); "
                          f"got a {type(module).__name__}: use freeze_layers=0")
    if count > len(blocks):
        raise ConfigError(f"freeze_layers is {count} but the network has only {len(blocks)} hidden "
                          f"layer{'' if len(blocks) == 1 else 's'}")
    return list(blocks[:int(count)])


def _replaced_head(module: nn.Module, own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> list[str]:
    """The output layer's tensor names if only its number of outputs differs from the file's
    (another number of classes): those keep their fresh initialisation."""
    linears = [name for name, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        return []
    prefix = f"{linears[-1]}." if linears[-1] else ""
    names = [n for n in own if n.startswith(prefix) and WEIGHT_NORM_KEY not in n]
    if not names or any(n not in state for n in names):
        return []
    shapes = [(state[n].shape, own[n].shape) for n in names]
    outputs_differ = any(a != b for a, b in shapes)
    rest_agrees = all(a[1:] == b[1:] for a, b in shapes)
    return names if outputs_differ and rest_agrees else []


def _check_fit(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], replaced: list[str]) -> None:
    """Raise one ConfigError naming every tensor that does not fit, with both shapes."""
    if any(WEIGHT_NORM_KEY in n for n in own) != any(WEIGHT_NORM_KEY in n for n in state):
        where = "the file's network uses" if any(WEIGHT_NORM_KEY in n for n in state) else "this network uses"
        raise ConfigError(f"pretrained weights do not fit this network: {where} weight norm "
                          "(norm='weight') and the other does not; build both with the same norm")
    problems = [f"{n} is {_shape(state[n])} in the file and {_shape(t)} here"
                for n, t in own.items() if n in state and n not in replaced and state[n].shape != t.shape]
    problems += [f"{n} is missing in the file" for n in own if n not in state]
    problems += [f"{n} is in the file but not in this network" for n in state if n not in own]
    if problems:
        more = f"; and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise ConfigError("pretrained weights do not fit this network: "
                          + "; ".join(problems[:MAX_LISTED]) + more)


def _shape(tensor: torch.Tensor) -> str:
    return str(tuple(tensor.shape)).replace(",)", ")")
