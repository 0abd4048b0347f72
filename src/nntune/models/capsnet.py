"""`capsnet`: a small capsule network with dynamic routing (Sabour, Frosst & Hinton, 2017) for
small images such as 8x8 or 28x28 digits.

conv (5x5, ReLU) -> primary capsules (a 3x3 stride-2 conv giving `primary_caps` 8-D capsules
at every position, squashed) -> one 16-D capsule per class, each primary capsule voting for it
through its own 16x8 matrix, combined by `routing_iters` rounds of routing by agreement. Images
larger than 16 pixels a side are max-pooled first so at most 8x8 positions hold primary
capsules: the vote matrices, one per position and capsule, would grow with the image otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ._registry import Family, ModelMeta, register_family
from .cnn import check_number

PRIMARY_DIM = 8
CLASS_DIM = 16
MAX_GRID = 8  # primary capsule positions per side at most
EPS = 1e-7

DEFAULTS = {"conv_channels": 64, "primary_caps": 8, "routing_iters": 3}

# The paper routes 3 times; 1 is plain averaging of the votes, a cheaper baseline.
SPACE = {
    "conv_channels": {"type": "int", "low": 32, "high": 128, "log": True},
    "primary_caps": {"type": "int", "low": 4, "high": 16},
    "routing_iters": {"type": "int", "low": 1, "high": 3},
}

STARTING_POINTS = (
    # Sabour, Frosst & Hinton (2017): 3 routing iterations, Adam at 1e-3 (TensorFlow's default),
    # no weight decay (the space's least here), batch 128; the network at the family's defaults,
    # a quarter of the paper's 256 conv channels and 32 primary capsule maps, for small images.
    # Alone on 8x8 digits (`--trials 1`, one thread): 98.6% test.
    {"conv_channels": 64, "primary_caps": 8, "routing_iters": 3, "optimizer": "adam", "lr": 1e-3,
     "weight_decay": 1e-6, "batch_size": 128, "schedule": "constant"},
)


def squash(s: torch.Tensor) -> torch.Tensor:
    """Shrink vectors to length |s|^2 / (1 + |s|^2), keeping their direction."""
    sq = s.pow(2).sum(-1, keepdim=True)
    return s * torch.sqrt(sq + EPS) / (1.0 + sq)


def route(votes: torch.Tensor, iters: int) -> torch.Tensor:
    """Routing by agreement over votes (batch, inputs, classes, dim): each input capsule's
    coupling to the classes is a softmax of logits that grow with the agreement (dot product)
    between its vote and the class capsule. Returns the class capsules before the squash."""
    logits = votes.new_zeros(votes.shape[:3])
    for i in range(iters):
        coupling = logits.softmax(dim=2)
        s = torch.einsum("bnc,bncd->bcd", coupling, votes)
        if i < iters - 1:
            logits = logits + torch.einsum("bncd,bcd->bnc", votes, squash(s))
    return s


class CapsNet(nn.Module):
    def __init__(self, in_channels: int, side: tuple[int, int], conv_channels: int, primary_caps: int,
                 n_classes: int, routing_iters: int) -> None:
        super().__init__()
        pools = []
        while max(side) > 2 * MAX_GRID:
            pools.append(nn.MaxPool2d(2))
            side = (side[0] // 2, side[1] // 2)
        self.conv = nn.Sequential(nn.Conv2d(in_channels, conv_channels, 5, padding=2), nn.ReLU(), *pools)
        self.primary = nn.Conv2d(conv_channels, primary_caps * PRIMARY_DIM, 3, stride=2, padding=1)
        n_inputs = primary_caps * ((side[0] + 1) // 2) * ((side[1] + 1) // 2)
        # Small votes to start with, so early class capsules are short and squash stays in its
        # sensitive range.
        self.votes = nn.Parameter(0.05 * torch.randn(n_inputs, n_classes, CLASS_DIM, PRIMARY_DIM))
        self.primary_caps, self.routing_iters = primary_caps, routing_iters

    def class_capsules(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, classes, 16) before the squash; their squashed lengths say how present each class is."""
        grid = self.primary(self.conv(x))  # (batch, caps * 8, h, w)
        b, _, h, w = grid.shape
        primary = squash(grid.view(b, self.primary_caps, PRIMARY_DIM, h, w).permute(0, 3, 4, 1, 2)
                         .reshape(b, -1, PRIMARY_DIM))
        votes = torch.einsum("bni,ncdi->bncd", primary, self.votes)
        return route(votes, self.routing_iters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The trainer applies cross entropy (or BCE) to raw outputs, so each class capsule's length
        # |v| = |s|^2 / (1 + |s|^2), read as the probability that the class is present, is returned
        # as its log-odds log(|v| / (1 - |v|)) = log |s|^2. That keeps the capsules' ranking, is
        # unbounded (so cross entropy can reach a confident prediction, which softmax over
        # lengths in [0, 1] cannot) and needs no margin loss, hence no trainer change.
        return torch.log(self.class_capsules(x).pow(2).sum(-1) + EPS)


def build(params: Mapping[str, Any], meta: ModelMeta) -> nn.Module:
    if meta.kind != "image" or len(meta.shape) != 3:
        raise ConfigError(f"capsnet takes images of shape (channels, height, width); got {meta.kind} "
                          f"samples of shape {meta.shape}")
    if meta.task == "regression":
        raise ConfigError("capsnet classifies (one capsule per class); for a regression task use another "
                          "family, e.g. cnn")
    return CapsNet(meta.shape[0], (meta.shape[1], meta.shape[2]),
                   int(check_number("conv_channels", params["conv_channels"], 1)),
                   int(check_number("primary_caps", params["primary_caps"], 1)), meta.output_dim,
                   int(check_number("routing_iters", params["routing_iters"], 1)))


def shape_of_weights(state: Mapping[str, Any]) -> dict[str, Any]:
    """conv_channels and primary_caps of the capsnet whose state dict `state` is (empty when the
    names are not a capsnet's)."""
    if "primary.weight" not in state or "votes" not in state:
        return {}
    return {"conv_channels": int(state["conv.0.weight"].shape[0]),
            "primary_caps": int(state["primary.weight"].shape[0]) // PRIMARY_DIM}


register_family(Family("capsnet", build, DEFAULTS, SPACE, data_kinds=("image",),
                       shape_keys=("conv_channels", "primary_caps"), shape_of_weights=shape_of_weights,
                       starting_points=STARTING_POINTS))
