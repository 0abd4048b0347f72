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
    """What a builder needs to know about the data: input width, output width and task, and
    for data that is not a table its kind and the shape of one sample.

    input_shape: one sample's shape, e.g. (features,) for tables, (channels, height, width)
    for images, (channels, length) for signals and time-series windows, (length,) of token ids
    for text, () for graph nodes (the graph itself is in `extra`). vocab_size: text only.
    """

    input_dim: int
    output_dim: int
    task: str
    kind: str = "table"
    input_shape: tuple[int, ...] = ()
    vocab_size: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.input_shape) or (self.input_dim,)

    def to_json(self) -> dict[str, Any]:
        """What a saved model needs to rebuild the network (the graph's tensors are weights)."""
        return {"input_dim": self.input_dim, "output_dim": self.output_dim, "task": self.task, "kind": self.kind,
                "input_shape": list(self.shape), "vocab_size": self.vocab_size,
                "extra": {k: v for k, v in self.extra.items() if isinstance(v, int | float | str | bool)}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelMeta:
        return cls(int(data["input_dim"]), int(data["output_dim"]), data["task"], data.get("kind", "table"),
                   tuple(data.get("input_shape", ())), int(data.get("vocab_size", 0)), dict(data.get("extra", {})))


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable[[Mapping[str, Any], ModelMeta], nn.Module]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    space: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # The kinds of data the family fits: table, image, signal, timeseries, text, graph.
    data_kinds: tuple[str, ...] = ("table",)
    # Parameters that decide the shapes of the weights: fixed to a pretrained model's values
    # when a run starts from its weights. A key ending in '_*' stands for numbered ones.
    shape_keys: tuple[str, ...] = ()
    # The shape parameters that pretrained weights imply (state-dict name -> tensor), so a
    # bare weights file fixes the network's shape as a model directory does.
    shape_of_weights: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    # Proven first trials, tried before the sampler takes over, best first: each a whole recipe
    # (the family's parameters and the training recipe's: optimizer, lr, ...) so the trial
    # samples nothing at random, with its source cited where the family declares it. Family
    # auto tries the first recipe of every family. A family may declare none.
    starting_points: tuple[Mapping[str, Any], ...] = ()
    # The label smoothing its classifiers train with where the config sets none
    # (training.label_smoothing left at null); regression has nothing to smooth.
    label_smoothing: float = 0.0


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add a family under its name; later registrations of the same name replace earlier ones."""
    _FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    check_choice("model family", name, sorted(_FAMILIES))
    return _FAMILIES[name]


def family_names(kind: str | None = None) -> list[str]:
    """Registered families, or those that fit data of `kind`."""
    return sorted(n for n, f in _FAMILIES.items() if kind is None or kind in f.data_kinds)


def build_model(family: str, params: Mapping[str, Any], meta: ModelMeta) -> nn.Module:
    """Build a network of `family` from plain values; missing values take the family's defaults."""
    spec = get_family(family)
    module = spec.build({**spec.defaults, **params}, meta)
    if meta.kind == "timeseries" and meta.output_dim == 1 and "target_channel" in meta.extra:
        from ._inputs import LastValueSkip  # the families import _inputs, which imports this module

        module = LastValueSkip(module, int(meta.extra["target_channel"]))
    return module


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
