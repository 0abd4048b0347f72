from __future__ import annotations

import importlib
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from nntune.data import encode_split
from nntune.data._graph import load_graph
from nntune.errors import ConfigError
from nntune.models import ModelMeta, build_model, family_names, get_family
from nntune.models.gnn import shape_of_weights
from nntune.training import fit, get_metric, make_head
from tests.conftest import TEST_DATA

NODES, FEATURES, CLASSES = 12, 6, 3


@pytest.fixture
def one_thread():
    # The CPUs are shared with other work: a second torch thread waits on busy cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_meta() -> ModelMeta:
    """A ring of 12 nodes with sparse non-negative features, as the graph encoder hands it over."""
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(NODES, FEATURES, generator=generator) > 0.85).float()
    ring = torch.arange(NODES)
    edge_index = torch.cat([torch.stack([ring, (ring + 1) % NODES]), torch.stack([(ring + 1) % NODES, ring])], 1)
    graph = {"x": x, "edge_index": edge_index}
    return ModelMeta(1, CLASSES, "multiclass", "graph", (), extra={
        "graph": graph, "num_nodes": NODES, "num_node_features": FEATURES, "num_edges": edge_index.shape[1]})


PARAMS = [{"conv": "gcn"}, {"conv": "sage", "layers": 3, "activation": "elu"},
          {"conv": "gat", "heads": 4, "hidden": 32}, {"conv": "gat", "layers": 1}]


def test_family_is_registered_for_graphs():
    assert "gnn" in family_names("graph") and "gnn" not in family_names("table")
    family = get_family("gnn")
    assert {k: family.defaults[k] for k in ("conv", "layers", "hidden", "dropout")} == \
        {"conv": "gcn", "layers": 2, "hidden": 16, "dropout": 0.5}


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: f"{p['conv']}-{p.get('layers', 2)}")
def test_forward_returns_the_rows_of_the_nodes_asked_for(params):
    model = build_model("gnn", params, tiny_meta()).eval()
    assert len(model.convs) == params.get("layers", 2)
    everything = model(torch.arange(NODES))
    assert everything.shape == (NODES, CLASSES)
    assert torch.equal(model(torch.tensor([5, 2])), everything[[5, 2]])


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: f"{p['conv']}-{p.get('layers', 2)}")
def test_a_saved_model_rebuilds_from_sizes_and_weights(params, tmp_path):
    meta = tiny_meta()
    torch.manual_seed(0)
    model = build_model("gnn", params, meta).eval()
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))  # the graph travels as buffers

    saved_meta = ModelMeta.from_json(meta.to_json())
    assert "graph" not in saved_meta.extra
    rebuilt = build_model("gnn", params, saved_meta)
    assert torch.count_nonzero(rebuilt.node_features) == 0  # zero buffers until loaded
    rebuilt.load_state_dict(load_file(str(tmp_path / "model.safetensors")))
    rebuilt.eval()
    nodes = torch.arange(NODES)
    assert torch.equal(rebuilt(nodes), model(nodes))
    assert model.feature_nonzeros is not None
    assert torch.equal(rebuilt.feature_nonzeros, model.feature_nonzeros)
    shape = shape_of_weights(model.state_dict())
    assert build_model("gnn", {**params, **shape}, saved_meta).state_dict().keys() == model.state_dict().keys()
    assert shape["conv"] == params["conv"] and shape["layers"] == params.get("layers", 2)


def test_the_model_owns_its_graph_tensors():
    meta = tiny_meta()
    model = build_model("gnn", {}, meta)
    model.node_features.zero_()
    assert torch.count_nonzero(meta.extra["graph"]["x"]) > 0


def test_input_dropout_drops_only_non_zero_features():
    model = build_model("gnn", {"dropout": 0.5}, tiny_meta()).train()
    x = model.node_features
    dropped = model._input_features()
    assert torch.all(dropped[x == 0] == 0)
    kept = dropped[x != 0]
    assert set(kept.tolist()) <= {0.0, 2.0} and 0 < torch.count_nonzero(kept) < len(kept)
    assert torch.equal(model.eval()._input_features(), x)


def test_bad_values_and_blended_inputs_are_refused():
    with pytest.raises(ConfigError, match="conv must be one of gcn, sage, gat; got 'gin'"):
        build_model("gnn", {"conv": "gin"}, tiny_meta())
    with pytest.raises(ConfigError, match="layers must be a whole number >= 1"):
        build_model("gnn", {"layers": 0}, tiny_meta())
    with pytest.raises(ConfigError, match="needs graph data"):
        build_model("gnn", {}, ModelMeta(4, 2, "binary"))
    with pytest.raises(ConfigError, match="mixup does not apply"):
        build_model("gnn", {}, tiny_meta())(torch.tensor([0.5]))


def test_the_family_loads_without_pyg_and_building_says_what_to_install(monkeypatch):
    import nntune.models.gnn as gnn

    for name in [m for m in sys.modules if m.split(".")[0] == "torch_geometric"] + ["torch_geometric"]:
        monkeypatch.setitem(sys.modules, name, None)  # any import of it, even one done before, now fails
    try:
        importlib.reload(gnn)  # registering the family must not need PyG
        assert "gnn" in family_names("graph")
        with pytest.raises(ConfigError, match=r"pip install 'nntune\[graph\]'"):
            build_model("gnn", {}, tiny_meta())
    finally:
        monkeypatch.undo()
        importlib.reload(gnn)


@pytest.fixture(scope="module")
def cora():
    """Cora's fixed split (140 training nodes, 500 validation, 1,000 test), loaded once."""
    data = load_graph(TEST_DATA / "graph", name="Cora")
    train, val, test = data.fixed_split
    split = encode_split(data, train, val)
    meta = ModelMeta(output_dim=7, task="multiclass", kind="graph", **split.model_input())
    return data, test, split, meta


_TRAINED: dict[str, float] = {}


def cora_test_accuracy(cora, params: dict, recipe: dict) -> float:
    """Test accuracy of a gnn of `params` trained with `recipe` (seed 0) on Cora's fixed split.
    Two calls that resolve to the same network and the same training (the family's defaults and
    the trainer's filled in) are the same computation: the second reads the first's result."""
    import json

    from nntune.training import DEFAULTS

    family = get_family("gnn")
    # What the builder and the trainer read: their defaults, overridden by what they are given
    # (each ignores the other's keys, as the starting recipe, given to both, relies on).
    resolved = {**family.defaults, **DEFAULTS, **params, **recipe}
    key = json.dumps([resolved, torch.get_num_threads()], sort_keys=True, default=str)
    if key not in _TRAINED:
        data, test, split, meta = cora
        torch.manual_seed(0)
        model = build_model("gnn", params, meta)
        started = time.monotonic()
        fit(model, make_head("multiclass", split.y_train, 7, recipe), split.X_train, split.y_train, recipe,
            X_val=split.X_eval, y_val=split.y_eval, metric=get_metric("accuracy", "multiclass"), seed=0)
        predicted = model.eval()(torch.from_numpy(split.preprocessor.transform(test))).argmax(1).numpy()
        _TRAINED[key] = float(np.mean(predicted == data.y[test]))
        print(f"GCN on Cora: test accuracy {_TRAINED[key]:.3f} in {time.monotonic() - started:.1f} s")
    return _TRAINED[key]


@pytest.mark.slow  # 200 full-batch epochs on Cora
def test_default_gcn_reaches_published_accuracy_on_cora(one_thread, cora):
    # Kipf & Welling's recipe; a batch larger than the 140 training nodes is full-batch training.
    recipe = {"lr": 0.01, "weight_decay": 5e-4, "batch_size": 10000, "max_epochs": 200, "patience": 200}
    assert cora_test_accuracy(cora, {}, recipe) >= 0.78


@pytest.mark.slow
def test_the_gcn_starting_recipe_reaches_the_paper_s_accuracy_on_cora(one_thread, cora):
    """The gnn family's first recipe, as registered, trained as Kipf & Welling did: full batch,
    200 epochs, the epoch of the best validation accuracy kept. Their 81.5% within 2 points."""
    recipe = get_family("gnn").starting_points[0]
    assert recipe["conv"] == "gcn"
    params = {**recipe, "batch_size": 10000, "max_epochs": 200, "patience": 200}
    assert cora_test_accuracy(cora, params, params) >= 0.795
