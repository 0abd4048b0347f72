"""Graph nodes: a Planetoid citation graph (Cora, CiteSeer, PubMed) read with PyTorch Geometric.

Node classification rides on the row-based trainer: the samples are the node indices, the
labels the node classes, and the split is the data set's public one. The graph itself (node
features and edges) travels in the encoder to the model, which holds it as buffers, so the
trainer only ever slices indices.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..errors import DataError
from ._arrays import ArrayData, encode_labels, register_encoder

INSTALL_HINT = "graphs need PyTorch Geometric: pip install 'nntune[graph]'"
# The files PyG's Planetoid reads; with all of them present it never goes to the network.
PLANETOID_PARTS = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


class GraphEncoder:
    """The identity on node indices that carries the graph to the model.

    `graph` holds the tensors x (nodes, features; already row-normalized) and edge_index
    (2, edges). A saved model keeps only the sizes here: the tensors are buffers of the
    network and live in its weights file.
    """

    name: ClassVar[str] = "graph"

    def __init__(self, graph: dict[str, torch.Tensor] | None = None, num_nodes: int = 0,
                 num_node_features: int = 0, num_edges: int = 0) -> None:
        self.graph = graph
        if graph is not None:
            num_nodes, num_node_features = graph["x"].shape
            num_edges = graph["edge_index"].shape[1]
        self.num_nodes, self.num_node_features, self.num_edges = int(num_nodes), int(num_node_features), int(num_edges)

    def fit(self, X: np.ndarray) -> GraphEncoder:
        self.transform(X)  # nothing to learn; only checks the indices
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 1 or not np.issubdtype(X.dtype, np.integer):
            raise DataError(f"graph samples are node indices (a 1-d integer array); got {X.dtype} of shape {X.shape}")
        if len(X) and (X.min() < 0 or X.max() >= self.num_nodes):
            raise DataError(f"node indices must lie in 0..{self.num_nodes - 1}; got {X.min()}..{X.max()}")
        return X.astype(np.int64, copy=False)

    def model_input(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"num_nodes": self.num_nodes, "num_node_features": self.num_node_features,
                                 "num_edges": self.num_edges}
        if self.graph is not None:
            extra["graph"] = self.graph
        return {"input_shape": (), "extra": extra}

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "num_nodes": self.num_nodes, "num_node_features": self.num_node_features,
                "num_edges": self.num_edges}


register_encoder(GraphEncoder.name, lambda d: GraphEncoder(
    None, d["num_nodes"], d["num_node_features"], d["num_edges"]))


def row_normalize(x: torch.Tensor) -> torch.Tensor:
    """Each node's features divided by their sum (absolute values), as Kipf & Welling do.

    Taken over the whole graph on purpose: node classification is transductive (every node's
    features are seen in training, only the labels are held out), and each row is scaled by
    its own sum, so no statistic crosses from one node to another and no label is involved.
    A node without features stays zero.
    """
    return torch.nn.functional.normalize(x.float(), p=1.0, dim=1)


def load_graph(path: str | Path, *, name: str | None) -> ArrayData:
    """Read the Planetoid graph `<path>/<name>/raw/ind.<name>.*` for node classification.

    Called by `load_data` when the data section names a graph. Nothing is written into
    `path`: PyG's processed files go to a temporary copy, removed once the graph is read.

    >>> data = load_graph("data/graph", name="Cora")   # 2,708 nodes, public split 140/500/1000
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"graph folder '{root}' does not exist")
    folder = _graph_folder(root, name)
    try:
        from torch_geometric.datasets import Planetoid
    except ImportError:
        raise DataError(INSTALL_HINT) from None

    with tempfile.TemporaryDirectory(prefix="nntune-graph-") as tmp:
        shutil.copytree(folder / "raw", Path(tmp) / folder.name / "raw")
        # PyG prints 'Processing...' while it converts the raw files: not nntune's output.
        with contextlib.redirect_stderr(io.StringIO()):
            graph = Planetoid(root=tmp, name=folder.name)[0]
    _check_graph(graph, folder)

    codes, classes = encode_labels(graph.y.numpy(), "multiclass")
    split = tuple(np.flatnonzero(mask.numpy()).astype(np.int64)
                  for mask in (graph.train_mask, graph.val_mask, graph.test_mask))
    tensors = {"x": row_normalize(graph.x).contiguous(), "edge_index": graph.edge_index.long().contiguous()}
    details = {"graph": folder.name, "nodes": int(graph.num_nodes), "edges": int(graph.num_edges),
               "node_features": int(graph.num_node_features),
               "public_split": "/".join(str(len(rows)) for rows in split)}  # train/val/test nodes
    return ArrayData(np.arange(graph.num_nodes, dtype=np.int64), codes, "multiclass", "graph", folder.name,
                     make_encoder=partial(GraphEncoder, tensors), target="class", classes=classes,
                     fixed_split=split, final_on_validation=False, details=details)


def _check_graph(graph: Any, folder: Path) -> None:
    """Refuse a graph without edges (self-loops aside: PyG drops them) and node features that
    are not finite. Without edges a graph network is an MLP on node features that is scored as
    a graph model; the usual cause is a broken `ind.<name>.graph` file."""
    if graph.num_edges == 0:
        raise DataError(f"graph '{folder.name}' has no edges: {folder / 'raw'}/ind.{folder.name.lower()}.graph "
                        "lists no neighbour besides a node itself; give a graph with edges, or train on the "
                        "node features as a table")
    not_finite = int((~torch.isfinite(graph.x)).sum())
    if not_finite:
        raise DataError(f"the node features of graph '{folder.name}' hold {not_finite} NaN or infinite value(s); "
                        "replace them with numbers")


def _graph_folder(root: Path, name: str | None) -> Path:
    """`root/name`, matched case-insensitively (PyG calls it 'CiteSeer', users type 'citeseer'),
    checked to hold every raw file so that PyG never tries to download one."""
    available = _available(root)
    listed = ", ".join(available) or "none"
    if not name:
        raise DataError(f"a graph needs its name (--graph NAME); graphs in '{root}': {listed}")
    matches = [f for f in available if f.lower() == name.lower()]
    if not matches:
        raise DataError(f"no graph '{name}' in '{root}' (expected {name}/raw/ind.{name.lower()}.*); "
                        f"graphs there: {listed}")
    folder = root / (name if name in matches else matches[0])
    missing = [p for p in PLANETOID_PARTS if not (folder / "raw" / f"ind.{folder.name.lower()}.{p}").is_file()]
    if missing:
        raise DataError(f"graph '{folder.name}' is incomplete: {folder / 'raw'} lacks "
                        + ", ".join(f"ind.{folder.name.lower()}.{p}" for p in missing))
    return folder


def _available(root: Path) -> list[str]:
    """The folders of `root` that hold a Planetoid graph (raw/ind.<name>.x)."""
    return sorted(d.name for d in root.iterdir()
                  if d.is_dir() and (d / "raw" / f"ind.{d.name.lower()}.x").is_file())
