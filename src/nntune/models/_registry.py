"""The model-family registry: a name -> family mapping that later families plug into.

A family turns a plain parameter dict into an `nn.Module`. It also owns its defaults and its
default search space (plain dicts, parsed by `nntune.search`), so this package never imports
the search layer or optuna.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..errors import check_choice


@dataclass(frozen=True)
class ModelMeta:
    """What a builder needs to know about the data: input width, output width and task."""

    input_dim: int
    output_dim: int
    task: str


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable[[Mapping[str, Any], ModelMeta], nn.Module]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    space: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    data_kinds: tuple[str, ...] = ("table",)
    # Parameters that decide the shapes of the weights: fixed to a pretrained model's values
    # when a run starts from its weights. A key ending in '_*' stands for numbered ones.
    shape_keys: tuple[str, ...] = ()
    # The shape parameters that pretrained weights imply (state-dict name -> tensor), so a
    # bare weights file fixes the network's shape as a model directory does.
    shape_of_weights: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add a family under its name; later registrations of the same name replace earlier ones."""
    _FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    check_choice("model family", name, sorted(_FAMILIES))
    return _FAMILIES[name]


def family_names() -> list[str]:
    return sorted(_FAMILIES)


def build_model(family: str, params: Mapping[str, Any], meta: ModelMeta) -> nn.Module:
    """Build a network of `family` from plain values; missing values take the family's defaults."""
    spec = get_family(family)
    return spec.build({**spec.defaults, **params}, meta)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
