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
    def __init__(self, members: list[nn.Module], combine: str) -> None:
        super().__init__()
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {', '.join(COMBINES)}; got '{combine}'")
        self.members = nn.ModuleList(members)
        self.combine = combine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = torch.stack([member(x) for member in self.members])
        if self.combine == "mean":
            return outputs.mean(dim=0)
        if self.combine == "sigmoid":
            p = torch.sigmoid(outputs).mean(dim=0).clamp(_EPS, 1 - _EPS)
            return torch.log(p) - torch.log1p(-p)
        return torch.log(torch.softmax(outputs, dim=-1).mean(dim=0).clamp_min(_EPS))
