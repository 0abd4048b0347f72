"""Several networks of one input and output shape as one: their predictions averaged.

The average is taken where a head reads it (probabilities for classification, values for
regression), and returned as outputs the same head turns back into those probabilities: the
log of the mean softmax, the logit of the mean sigmoid, or the mean value. So an ensemble goes
wherever a single network goes: the trainer's prediction loop, saving, ONNX export, distillation.
"""

from __future__ import annotations

import torch
from torch import nn

COMBINES = ("softmax", "sigmoid", "mean")
_EPS = 1e-7  # keeps log and logit finite where every member is certain


class Ensemble(nn.Module):
    """`members` averaged with `weights` (default: equal; they are normalised to sum to 1).

    With `mean`, member i's output is first mapped by `scales[i] * output + shifts[i]`: fold
    models of a regression each learned targets standardised by their own fold's statistics,
    and this puts them all on the scale of the head that reads the average."""

    def __init__(self, members: list[nn.Module], combine: str, weights: list[float] | None = None,
                 scales: list[float] | None = None, shifts: list[float] | None = None) -> None:
        super().__init__()
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {', '.join(COMBINES)}; got '{combine}'")
        if (scales is not None or shifts is not None) and combine != "mean":
            raise ValueError("scales and shifts apply to combine 'mean' only")
        self.members = nn.ModuleList(members)
        self.combine = combine
        w = [float(v) for v in weights] if weights is not None else [1.0] * len(members)
        # Not buffers: these lists are saved in model.json, and the state dict stays the members'.
        self.weights = [v / sum(w) for v in w]
        self.scales = [float(v) for v in scales] if scales is not None else [1.0] * len(members)
        self.shifts = [float(v) for v in shifts] if shifts is not None else [0.0] * len(members)
        if not len(self.weights) == len(self.scales) == len(self.shifts) == len(members):
            raise ValueError("weights, scales and shifts need one value per member")

    @property
    def rescaled(self) -> bool:
        """Whether any member's output is mapped before averaging (model.json then stores how)."""
        return any(s != 1.0 for s in self.scales) or any(b != 0.0 for b in self.shifts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [member(x) for member in self.members]
        if self.combine == "mean":
            return sum(w * (s * o + b) for w, s, b, o in zip(self.weights, self.scales, self.shifts, outputs,
                                                             strict=True))
        if self.combine == "sigmoid":
            p = sum(w * torch.sigmoid(o) for w, o in zip(self.weights, outputs, strict=True)).clamp(_EPS, 1 - _EPS)
            return torch.log(p) - torch.log1p(-p)
        p = sum(w * torch.softmax(o, dim=-1) for w, o in zip(self.weights, outputs, strict=True))
        return torch.log(p.clamp_min(_EPS))
