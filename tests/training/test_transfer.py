from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from sklearn.datasets import make_classification

from nntune.errors import ConfigError
from nntune.models import ModelMeta, build_model
from nntune.predictor import load_pretrained
from nntune.training import (
    TRANSFER_DEFAULTS,
    TRANSFER_SPACE,
    apply_pretrained,
    fit,
    make_head,
    make_optimizer,
    predict_outputs,
)

N_FEATURES = 10
RECIPE = {"lr": 0.01, "batch_size": 32, "max_epochs": 5}


def table(n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(n_samples=240, n_features=N_FEATURES, n_informative=6, n_classes=n_classes,
                               random_state=seed)
    return X.astype(np.float32), y.astype(np.int64)


def mlp(n_classes: int = 3, *, units: int = 16, n_layers: int = 2, norm: str = "batch", seed: int = 1):
    torch.manual_seed(seed)
    params = {"n_layers": n_layers, "units": units, "norm": norm}
    return build_model("mlp", params, ModelMeta(N_FEATURES, n_classes, "multiclass"))


def train(model, n_classes: int, seed: int, **kwargs):
    X, y = table(n_classes, seed)
    head = make_head("multiclass", y, n_classes, RECIPE)
    return fit(model, head, X, y, RECIPE, **kwargs)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A 3-class network trained on table A, saved as a .safetensors file: (path, its tensors)."""
    model = mlp(seed=0)
    train(model, 3, seed=0)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("source") / "weights.safetensors"
    save_file(state, str(path))
    return path, state


def test_apply_copies_every_tensor_of_the_file(source):
    path, state = source
    model = mlp()
    t = apply_pretrained(model, load_pretrained(path), freeze_layers=0, lr_scale=1.0)
    assert t.replaced == [] and sorted(t.loaded) == sorted(state)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[name]), name


def test_frozen_layers_stay_bit_identical_while_the_rest_trains(source):
    path, state = source
    model = mlp()
    t = apply_pretrained(model, load_pretrained(path), freeze_layers=1, lr_scale=0.1)
    assert t.frozen == [model.blocks[0]]
    train(model, 3, seed=7, param_groups=t.param_groups, frozen=t.frozen)
    now = model.state_dict()
    first = [n for n in state if n.startswith("blocks.0.")]
    assert {"blocks.0.norm.running_mean", "blocks.0.norm.running_var"} <= set(first)
    for name in first:
        assert torch.equal(now[name], state[name]), name
    for name in ("blocks.1.linear.weight", "blocks.1.norm.running_mean", "head.weight"):
        assert not torch.equal(now[name], state[name]), name


def test_another_number_of_classes_replaces_the_head(source):
    path, state = source
    model = mlp(5)
    fresh_head = model.head.weight.detach().clone()
    t = apply_pretrained(model, load_pretrained(path), freeze_layers=0, lr_scale=0.5)
    assert t.replaced == ["head.weight", "head.bias"]
    assert torch.equal(model.head.weight, fresh_head)
    assert "replaced head.weight, head.bias" in t.summary()
    assert torch.equal(model.blocks[1].linear.weight, state["blocks.1.linear.weight"])
    result = train(model, 5, seed=3, param_groups=t.param_groups)
    assert result.history["train_loss"][-1] < result.history["train_loss"][0]
    X, _ = table(5, seed=3)
    assert predict_outputs(model, torch.from_numpy(X)).shape == (len(X), 5)


def test_another_width_names_the_layers_and_both_shapes(source):
    path, _ = source
    with pytest.raises(ConfigError) as info:
        apply_pretrained(mlp(units=32), load_pretrained(path), freeze_layers=0, lr_scale=1.0)
    message = str(info.value)
    assert "blocks.0.linear.weight is (16, 10) in the file and (32, 10) here" in message
    assert "\n" not in message


def test_a_deeper_network_names_the_missing_layer(source):
    path, _ = source
    with pytest.raises(ConfigError, match=r"blocks\.2\.linear\.weight is missing in the file"):
        apply_pretrained(mlp(n_layers=3), load_pretrained(path), freeze_layers=0, lr_scale=1.0)


def test_lr_scale_slows_pretrained_layers_only(source):
    path, _ = source
    model = mlp(5)
    t = apply_pretrained(model, load_pretrained(path), freeze_layers=1, lr_scale=0.1)
    optimizer = make_optimizer(t.param_groups, {"optimizer": "adam", "lr": 0.01, "weight_decay": 0.0})
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.001, 0.01])
    grouped = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert not grouped & {id(p) for p in model.blocks[0].parameters()}
    assert {id(model.head.weight), id(model.head.bias)} == {id(p) for p in optimizer.param_groups[1]["params"]}


def test_freezing_more_layers_than_there_are_names_both_numbers(source):
    path, _ = source
    with pytest.raises(ConfigError, match="freeze_layers is 3 but the network has only 2 hidden layers"):
        apply_pretrained(mlp(), load_pretrained(path), freeze_layers=3, lr_scale=1.0)


def test_weight_norm_mismatch_is_explained_and_matching_norms_load(tmp_path):
    source = mlp(norm="weight", seed=0)
    path = tmp_path / "wn.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    with pytest.raises(ConfigError, match="weight norm"):
        apply_pretrained(mlp(norm="none"), load_pretrained(path), freeze_layers=0, lr_scale=1.0)
    model = mlp(norm="weight")
    apply_pretrained(model, load_pretrained(path), freeze_layers=1, lr_scale=1.0)
    X = torch.from_numpy(table(3, 0)[0])
    assert torch.equal(predict_outputs(model, X), predict_outputs(source, X))


def test_unreadable_sources_name_the_path_and_what_is_accepted(tmp_path):
    with pytest.raises(ConfigError, match=r"nowhere.*does not exist.*model directory or a \.safetensors"):
        load_pretrained(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="holds no model.safetensors"):
        load_pretrained(tmp_path)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_text("not a weights file")
    with pytest.raises(ConfigError, match="garbage.safetensors.*not readable"):
        load_pretrained(garbage)
    quantized = tmp_path / "int8"
    quantized.mkdir()
    save_file({"int8": torch.zeros(4, dtype=torch.int8)}, str(quantized / "model.safetensors"))
    (quantized / "model.json").write_text('{"compression": {"method": "quantize"}}')
    with pytest.raises(ConfigError, match="int8-quantized.*uncompressed model"):
        load_pretrained(quantized)


def test_a_saved_nntune_model_directory_starts_a_new_task(tmp_path):
    import nntune

    X, y = table(3, seed=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(N_FEATURES)]).assign(y=y)
    space = {"n_layers": 1, "units": 16, "norm": "batch", "embedding": "none"}
    run = nntune.tune(frame, target="y", trials=1, max_epochs=3, space=space, out=tmp_path / "run", report=False)
    model = build_model("mlp", run.model.info["params"], ModelMeta(N_FEATURES, 5, "multiclass"))
    t = apply_pretrained(model, load_pretrained(tmp_path / "run" / "model"), freeze_layers=1, lr_scale=0.1)
    assert t.replaced == ["head.weight", "head.bias"]
    assert "blocks.0.norm.running_mean" in t.loaded


def test_defaults_and_space_cover_the_same_keys():
    assert set(TRANSFER_SPACE) == set(TRANSFER_DEFAULTS)
