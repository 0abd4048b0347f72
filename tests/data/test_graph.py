from __future__ import annotations

import socket
import sys

import numpy as np
import pytest
import torch

from nntune.data import encode_split, encoder_from_json, make_folds, split_train_test
from nntune.data._graph import GraphEncoder, load_graph
from nntune.errors import DataError
from tests.conftest import TEST_DATA

GRAPHS = TEST_DATA / "graph"


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def cora():
    """Cora read with the network switched off: PyG must find every raw file and download nothing."""
    before = _tree(GRAPHS)

    def no_network(*args, **kwargs):
        raise AssertionError("load_graph tried to reach the network")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", no_network)
        data = load_graph(GRAPHS, name="Cora")
    assert _tree(GRAPHS) == before  # nothing written beside the data (no processed/)
    return data


def test_cora_loads_with_its_public_split(cora):
    assert (cora.kind, cora.task, cora.name) == ("graph", "multiclass", "Cora")
    assert cora.n_rows == 2708 and cora.classes == list(range(7))
    np.testing.assert_array_equal(cora.features, np.arange(2708))
    assert [len(rows) for rows in cora.fixed_split] == [140, 500, 1000]
    assert not (GRAPHS / "Cora" / "processed").exists()
    extra = cora.make_encoder().model_input()["extra"]
    assert (extra["num_nodes"], extra["num_node_features"], extra["num_edges"]) == (2708, 1433, 10556)
    assert extra["graph"]["x"].shape == (2708, 1433) and extra["graph"]["edge_index"].shape == (2, 10556)


def test_features_are_row_normalized(cora):
    x = cora.make_encoder().graph["x"]
    sums = x.sum(dim=1)
    assert torch.allclose(sums[sums > 0], torch.ones(1)) and x.dtype == torch.float32


def test_splits_are_the_public_split(cora):
    train, val, test = cora.fixed_split
    rest, held_out = split_train_test(cora, 0.2, seed=0)
    np.testing.assert_array_equal(held_out, test)
    # The final model trains on the 140 training nodes only, as the published scores assume.
    np.testing.assert_array_equal(rest, np.sort(train))
    [(fold_train, fold_val)] = make_folds(cora, rest, None, 0.2, seed=0)
    np.testing.assert_array_equal(fold_train, train)
    np.testing.assert_array_equal(fold_val, val)


def test_encoder_is_the_identity_on_node_indices_and_saves_only_sizes(cora):
    split = encode_split(cora, cora.fixed_split[0], cora.fixed_split[1])
    np.testing.assert_array_equal(split.X_train, cora.fixed_split[0])
    assert split.X_train.dtype == np.int64 and split.model_input()["input_shape"] == ()
    saved = split.preprocessor.to_json()
    assert saved == {"name": "graph", "num_nodes": 2708, "num_node_features": 1433, "num_edges": 10556}
    reloaded = encoder_from_json(saved)
    assert "graph" not in reloaded.model_input()["extra"]
    with pytest.raises(DataError, match=r"node indices must lie in 0\.\.2707"):
        reloaded.transform(np.array([0, 2708]))
    with pytest.raises(DataError, match="1-d integer array"):
        GraphEncoder(None, 3, 1, 0).transform(np.array([0.5]))


def test_a_missing_graph_names_the_graphs_there():
    with pytest.raises(DataError, match=r"no graph 'PubMed'.*graphs there: Cora"):
        load_graph(GRAPHS, name="PubMed")
    with pytest.raises(DataError, match=r"needs its name.*Cora"):
        load_graph(GRAPHS, name=None)


def test_an_incomplete_graph_is_refused_before_pyg_could_download(tmp_path):
    raw = tmp_path / "Cora" / "raw"
    raw.mkdir(parents=True)
    (raw / "ind.cora.x").write_bytes(b"")
    with pytest.raises(DataError, match=r"incomplete.*ind\.cora\.tx"):
        load_graph(tmp_path, name="cora")  # matched case-insensitively


def test_without_pyg_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_geometric.datasets", None)
    with pytest.raises(DataError, match=r"pip install 'nntune\[graph\]'"):
        load_graph(GRAPHS, name="Cora")


def _write_planetoid(root, name, *, edges=True, nan_feature=False):
    """A tiny graph in the Planetoid layout: 10 training, 500 validation, 20 test nodes
    (PyG takes the 500 nodes after the training ones as validation nodes)."""
    import pickle

    raw = root / name / "raw"
    raw.mkdir(parents=True)
    n_all, n_test = 520, 20
    rng = np.random.default_rng(0)
    onehot = np.eye(2, dtype=np.float32)[rng.integers(0, 2, n_all + n_test)]
    features = rng.random((n_all + n_test, 5)).astype(np.float32)
    if nan_feature:
        features[3, 1] = np.nan
    neighbours = {i: [] for i in range(n_all + n_test)}
    for i in range(n_all + n_test):
        neighbours[i].append(i + 1 if edges and i + 1 < n_all + n_test else i)  # else a self-loop only
    parts = {"x": features[:10], "y": onehot[:10], "allx": features[:n_all], "ally": onehot[:n_all],
             "tx": features[n_all:], "ty": onehot[n_all:], "graph": neighbours}
    for part, value in parts.items():
        (raw / f"ind.{name.lower()}.{part}").write_bytes(pickle.dumps(value))
    (raw / f"ind.{name.lower()}.test.index").write_text("\n".join(map(str, range(n_all, n_all + n_test))) + "\n")


def test_a_graph_without_edges_is_refused(tmp_path):
    # It trained graph networks on a graph of isolated nodes, and scored them as such.
    _write_planetoid(tmp_path, "Linked")
    _write_planetoid(tmp_path, "Lonely", edges=False)
    assert load_graph(tmp_path, name="Linked").details["edges"] > 0
    with pytest.raises(DataError, match=r"graph 'Lonely' has no edges: .*ind.lonely.graph lists no neighbour"):
        load_graph(tmp_path, name="Lonely")


def test_node_features_that_are_not_finite_are_refused(tmp_path):
    _write_planetoid(tmp_path, "Holes", nan_feature=True)
    with pytest.raises(DataError, match=r"node features of graph 'Holes' hold 1 NaN or infinite value"):
        load_graph(tmp_path, name="Holes")
