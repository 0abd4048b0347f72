"""The regularisation cocktail: every regulariser an on/off switch, its strength searched only
while it is on.

The idea (Kadra et al., 2021, "Well-tuned simple nets excel on tabular datasets"): a plain MLP
whose search chooses which regularisers to combine, and how strongly, competes with boosted trees
on tables. The entries are plain space data, like the default spaces; the run's plan adds them
when `search.cocktail` is set. A switch that is off leaves its strength unset, so the default
applies (0, None, False) and neither the model nor the trainer has to know about switches.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

# strength parameter -> (its switch, its range while on). A strength whose own choices include
# "off" (norm: none; residual: False) needs no separate switch.
COCKTAIL: dict[str, tuple[str | None, dict[str, Any]]] = {
    # Heavy dropout pays off on wide networks; below 0.05 it is noise.
    "dropout": ("use_dropout", {"type": "float", "low": 0.05, "high": 0.8}),
    "norm": (None, {"type": "categorical", "choices": ["none", "batch", "layer"]}),
    # Decoupled for adamw, L2 for the others, as everywhere in the recipe.
    "weight_decay": ("use_weight_decay", {"type": "float", "low": 1e-5, "high": 1e-1, "log": True}),
    # A sum over all weights, added to a mean loss: small values already bite.
    "l1": ("use_l1", {"type": "float", "low": 1e-7, "high": 1e-3, "log": True}),
    # Beta(alpha, alpha): near 0 the blend is almost always one row; 1 blends uniformly.
    "mixup_alpha": ("use_mixup", {"type": "float", "low": 0.1, "high": 1.0}),
    "clip_norm": ("use_clipping", {"type": "float", "low": 0.1, "high": 10.0, "log": True}),
    "residual": (None, {"type": "categorical", "choices": [False, True]}),
}

SWITCH = {"type": "categorical", "choices": [False, True]}


def cocktail_space(known: Collection[str], user: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Raw space entries of the cocktail, for the strengths in `known` (the parameters the model
    and the trainer take: a custom network gets the training-side ones only).

    The user's own `search.space` entries are merged over these by the caller and win. A strength
    the user sets (a range or a plain value) keeps no switch, unless the user's entries name the
    switch (fixing `use_mixup: false` drops mixup; a range `when: {use_l1: true}` keeps it).

    >>> sorted(cocktail_space({"l1"}))
    ['l1', 'use_l1']
    """
    user = user or {}
    named = set(user) | {parent for entry in user.values() for parent in (_when(entry) or {})}
    entries: dict[str, dict[str, Any]] = {}
    for strength, (switch, spec) in COCKTAIL.items():
        if strength not in known:
            continue
        if switch is None:
            entries[strength] = dict(spec)
        elif strength not in user or switch in named:
            entries[switch] = dict(SWITCH)
            entries[strength] = {**spec, "when": {switch: True}}
    return entries


def _when(entry: Any) -> Mapping[str, Any] | None:
    """The `when` of a raw (dict) or validated (ParamSpec) space entry; None for a plain value."""
    return entry.get("when") if isinstance(entry, Mapping) else getattr(entry, "when", None)
