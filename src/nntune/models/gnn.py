"""`gnn`: message-passing networks (GCN, GraphSAGE, GAT) that classify the nodes of one graph.

The samples are node indices (see `nntune.data._graph`). The network holds the graph as
buffers, so a saved model carries it in its weights file, runs every layer over the whole
graph and returns the rows of the nodes asked for: the row-based trainer needs no change,
and a batch at least as large as the training nodes is full-batch training, as in GCN.

PyTorch Geometric is an optional extra: it is imported when a network is built, so this
module (and the family's registration) loads without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ._registry import Family, ModelMeta, register_family

CONVS = ("gcn", "sage", "gat")
ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU}
INSTALL_HINT = "the gnn family needs PyTorch Geometric: pip install 'nntune[graph]'"

# Kipf & Welling's GCN (2017): two layers, 16 hidden units, dropout 0.5 (their recipe adds
# lr 0.01 and weight decay 5e-4). `heads` applies to gat only.
DEFAULTS = {"conv": "gcn", "layers": 2, "hidden": 16, "dropout": 0.5, "activation": "relu", "heads": 1}

# Where the published citation-graph models lie: 2-3 layers (Kipf & Welling's appendix B:
# one layer sees too little of the graph, deeper ones over-smooth), widths from GCN's 16 to
# GAT's 8 heads x 8 and a little beyond, heavy dropout on so few labelled nodes (GCN 0.5, GAT
# 0.6). nntune on Cora (docs/benchmarks.md): the old space (1-3 layers, 16-256 units, dropout
# 0-0.8) fitted one trial in 90 s, 76.5%; around GCN's recipe (2 layers, 16-64 units, dropout
# 0.3-0.8) ten trials gave 81.7%. In a 3-minute search of this space its 3-layer trials scored
# 59-80% on validation, its 2-layer ones mostly 78-81%.
SPACE = {
    "conv": {"type": "categorical", "choices": list(CONVS)},
    "layers": {"type": "int", "low": 2, "high": 3},
    "hidden": {"type": "int", "low": 16, "high": 128, "log": True},
    "dropout": {"type": "float", "low": 0.3, "high": 0.8},
    "activation": {"type": "categorical", "choices": list(ACTIVATIONS)},
    "heads": {"type": "int", "low": 1, "high": 8, "when": {"conv": "gat"}},
}

STARTING_POINTS = (
    # GCN (Kipf & Welling 2017, Cora 81.5%): 2 layers, 16 hidden units, dropout 0.5, Adam at
    # 0.01 with weight decay 5e-4. (Full-batch training: a graph's batch is fixed to every node.)
    # Alone, 200 epochs and the best validation epoch kept: 82.0% test (3 seeds). It learns
    # slowly, so a patience of 10 epochs on validation accuracy may stop it early (65% once).
    {"conv": "gcn", "layers": 2, "hidden": 16, "dropout": 0.5, "activation": "relu",
     "optimizer": "adam", "lr": 0.01, "weight_decay": 5e-4, "schedule": "constant"},
    # GAT (Velickovic et al. 2018, Cora 83.0%): 2 layers, 8 heads of 8 units, ELU, dropout 0.6,
    # Adam at 0.005 with weight decay 5e-4 (their dropout on the attention weights is not here).
    # Alone: 80.9% (3 seeds, 200 epochs), 79.6% with a patience of 10.
    {"conv": "gat", "layers": 2, "hidden": 64, "heads": 8, "dropout": 0.6, "activation": "elu",
     "optimizer": "adam", "lr": 0.005, "weight_decay": 5e-4, "schedule": "constant"},
    # GraphSAGE (Hamilton et al. 2017): mean aggregation over K = 2 layers with ReLU and Adam at
    # 0.01, as in the paper; its inductive setting has far more labels, so the width and the
    # regularization follow GCN's for Cora's 140 (64 units, dropout 0.5, weight decay 5e-4).
    # Alone: 80.4% (3 seeds, a patience of 10), about 6 times GCN's time per epoch.
    {"conv": "sage", "layers": 2, "hidden": 64, "dropout": 0.5, "activation": "relu",
     "optimizer": "adam", "lr": 0.01, "weight_decay": 5e-4, "schedule": "constant"},
)


class GNN(nn.Module):
    """Dropout -> conv -> activation per layer (no activation after the last), over the whole
    graph; `forward(node_idx)` returns the outputs of those nodes, (batch, output_dim)."""

    def __init__(self, convs: list[nn.Module], node_features: torch.Tensor, edge_index: torch.Tensor,
                 dropout: float, activation: str) -> None:
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.dropout = nn.Dropout(dropout)
        self.activation = ACTIVATIONS[activation]()
        self.register_buffer("node_features", node_features)
        self.register_buffer("edge_index", edge_index)
        # Where the features are not zero (flat positions; not saved, moved with the module).
        self.register_buffer("feature_nonzeros", _sparse_positions(node_features), persistent=False)
        self.register_load_state_dict_post_hook(_find_nonzeros)

    def forward(self, node_idx: torch.Tensor) -> torch.Tensor:
        if node_idx.is_floating_point():
            # Blended inputs (mixup) are no nodes: refuse rather than round them to one.
            raise ConfigError("the gnn family takes node indices; mixup does not apply to graph nodes")
        h = self._input_features()
        for i, conv in enumerate(self.convs):
            h = conv(h if i == 0 else self.dropout(h), self.edge_index)
            if i < len(self.convs) - 1:
                h = self.activation(h)
        return h[node_idx]

    def _input_features(self) -> torch.Tensor:
        """The node features after dropout. Bag-of-words features are about 99% zeros, and
        dropping a zero changes nothing: drawing the mask for the non-zeros only gives the same
        distribution as dropout over the whole matrix, about 80 times fewer random draws on
        Cora (the draws were most of an epoch's time)."""
        p = self.dropout.p
        if not self.training or p == 0 or self.feature_nonzeros is None:
            return self.dropout(self.node_features)
        values = self.node_features.view(-1)[self.feature_nonzeros]
        out = torch.zeros_like(self.node_features)
        out.view(-1)[self.feature_nonzeros] = values * torch.empty_like(values).bernoulli_(1 - p) / (1 - p)
        return out


def _sparse_positions(features: torch.Tensor) -> torch.Tensor | None:
    """Flat positions of the non-zero features, or None (plain dropout) when more than a
    quarter are non-zero, as the positions would then outweigh the features, or when none
    are: zero buffers are filled later, and a fill other than load_state_dict must not leave
    the network training on positions that no longer hold."""
    positions = features.reshape(-1).nonzero().squeeze(1)
    return positions if 0 < len(positions) <= features.numel() // 4 else None


def _find_nonzeros(module: GNN, incompatible_keys: Any) -> None:
    """After load_state_dict filled the graph (into zero buffers, at a model's load)."""
    module.feature_nonzeros = _sparse_positions(module.node_features)


def build(params: Mapping[str, Any], meta: ModelMeta) -> nn.Module:
    """The network for `params`, holding the graph of `meta.extra["graph"]`, or zero buffers of
    the sizes in `meta.extra` when the graph comes later from a state dict (a saved model)."""
    conv = check_choice("conv", params["conv"], CONVS)
    check_choice("activation", params["activation"], ACTIVATIONS)
    layers, hidden, heads = (_whole(params, key) for key in ("layers", "hidden", "heads"))
    dropout = float(params["dropout"])
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1); got {dropout}")
    node_features, edge_index = _graph_tensors(meta)
    convs = _make_convs(conv, node_features.shape[1], meta.output_dim, layers, hidden, heads)
    return GNN(convs, node_features, edge_index, dropout, params["activation"])


def _whole(params: Mapping[str, Any], key: str) -> int:
    value = params[key]
    if int(value) != value or value < 1:
        raise ConfigError(f"{key} must be a whole number >= 1; got {value}")
    return int(value)


def _graph_tensors(meta: ModelMeta) -> tuple[torch.Tensor, torch.Tensor]:
    """Copies of the graph's tensors (the network owns its buffers: loading a state dict into
    it must never write into the data's graph), or zeros to be filled by load_state_dict."""
    graph = meta.extra.get("graph")
    if graph is not None:
        return graph["x"].detach().float().clone(), graph["edge_index"].detach().long().clone()
    try:
        nodes, features, edges = (int(meta.extra[k]) for k in ("num_nodes", "num_node_features", "num_edges"))
    except KeyError:
        raise ConfigError("the gnn family needs graph data (kind 'graph'): the model meta holds no graph "
                          "and no graph sizes") from None
    return torch.zeros(nodes, features), torch.zeros(2, edges, dtype=torch.long)


def _make_convs(conv: str, in_dim: int, output_dim: int, layers: int, hidden: int, heads: int) -> list[nn.Module]:
    """`layers` message-passing layers; the last maps to `output_dim`. GAT's hidden layers
    concatenate `heads` heads of hidden // heads units each, so `hidden` is the layer's width
    whatever the conv; its output layer has one head, as in the GAT paper on Cora."""
    try:
        from torch_geometric.nn import GATConv, GCNConv, SAGEConv
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    out = []
    for i in range(layers):
        last = i == layers - 1
        if conv == "gat":
            per_head = output_dim if last else max(1, hidden // heads)
            out.append(GATConv(in_dim, per_head, heads=1 if last else heads))
            in_dim = per_head * (1 if last else heads)
            continue
        width = output_dim if last else hidden
        out.append(GCNConv(in_dim, width) if conv == "gcn" else SAGEConv(in_dim, width))
        in_dim = width
    return out


def shape_of_weights(state: Mapping[str, Any]) -> dict[str, Any]:
    """conv, layers, hidden and heads of the GNN whose state dict `state` is (empty when the
    names are not a GNN's), so a bare weights file fixes the network's shape."""
    if "node_features" not in state or "edge_index" not in state:
        return {}
    layers = 0
    while any(k.startswith(f"convs.{layers}.") for k in state):
        layers += 1
    if layers == 0:
        return {}
    if "convs.0.att_src" in state:
        _, heads, per_head = state["convs.0.att_src"].shape
        shape = {"conv": "gat", "layers": layers, "heads": int(heads)}
        return shape if layers == 1 else {**shape, "hidden": int(heads * per_head)}
    sage = "convs.0.lin_l.weight" in state
    conv, weight = ("sage", "convs.0.lin_l.weight") if sage else ("gcn", "convs.0.lin.weight")
    shape = {"conv": conv, "layers": layers}
    return shape if layers == 1 else {**shape, "hidden": int(state[weight].shape[0])}


register_family(Family("gnn", build, DEFAULTS, SPACE, data_kinds=("graph",),
                       shape_keys=("conv", "layers", "hidden", "heads"), shape_of_weights=shape_of_weights,
                       starting_points=STARTING_POINTS))
