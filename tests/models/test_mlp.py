from __future__ import annotations

import pytest
import torch
from torch import nn

from nntune.errors import ConfigError
from nntune.models import ModelMeta, build_model, count_parameters, family_names, get_family

META = ModelMeta(input_dim=10, output_dim=3, task="multiclass")


def linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize("n_layers", [0, 1, 4])
def test_depth_and_width(n_layers):
    model = build_model("mlp", {"n_layers": n_layers, "units": 32}, META)
    layers = linears(model)
    assert len(layers) == n_layers + 1
    assert layers[0].in_features == 10 and layers[-1].out_features == 3
    assert model(torch.randn(5, 10)).shape == (5, 3)
    if n_layers == 0:  # zero hidden layers is a linear model
        assert count_parameters(model) == 10 * 3 + 3


def test_per_layer_units():
    model = build_model("mlp", {"n_layers": 3, "units_0": 64, "units_1": 32, "units_2": 16}, META)
    assert [lin.out_features for lin in linears(model)] == [64, 32, 16, 3]


@pytest.mark.parametrize("norm, kind", [("batch", nn.BatchNorm1d), ("layer", nn.LayerNorm)])
def test_norm_layers(norm, kind):
    model = build_model("mlp", {"n_layers": 2, "norm": norm}, META)
    assert sum(isinstance(m, kind) for m in model.modules()) == 2


def test_weight_norm_parametrizes_weights():
    model = build_model("mlp", {"n_layers": 1, "norm": "weight"}, META)
    first = model.blocks[0].linear
    assert hasattr(first, "parametrizations") and "weight" in first.parametrizations


def test_residual_adds_identity_only_where_shapes_match():
    params = {"n_layers": 3, "units": 16, "residual": True}
    model = build_model("mlp", params, ModelMeta(16, 1, "regression"))
    assert [b.residual for b in model.blocks] == [True, True, True]
    model = build_model("mlp", params, ModelMeta(8, 1, "regression"))
    assert [b.residual for b in model.blocks] == [False, True, True]


@pytest.mark.parametrize("init", ["xavier", "kaiming", "orthogonal"])
def test_inits_change_weights_and_zero_biases(init):
    torch.manual_seed(0)
    default = build_model("mlp", {"n_layers": 1, "units": 32}, META)
    torch.manual_seed(0)
    model = build_model("mlp", {"n_layers": 1, "units": 32, "init": init}, META)
    assert not torch.allclose(linears(default)[0].weight, linears(model)[0].weight)
    assert torch.count_nonzero(linears(model)[0].bias) == 0
    if init == "orthogonal":
        w = linears(model)[0].weight
        assert torch.allclose(w.T @ w, torch.eye(10), atol=1e-4)  # (32, 10): columns orthonormal


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "gelu", "silu", "tanh", "selu"])
def test_every_activation_builds_and_runs(activation):
    model = build_model("mlp", {"activation": activation, "dropout": 0.2}, META)
    assert torch.isfinite(model(torch.randn(4, 10))).all()


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="activation must be one of .*got 'rellu'.*did you mean 'relu'"):
        build_model("mlp", {"activation": "rellu"}, META)
    with pytest.raises(ConfigError, match="model family must be one of"):
        build_model("cnnn", {}, META)


@pytest.mark.parametrize("name", family_names("table"))
def test_family_contract(name):
    """Every family for tables builds from its defaults alone and declares a valid space (the
    other kinds' families have the same check with their own samples in their test files)."""
    from nntune.config import ParamSpec

    family = get_family(name)
    for entry in family.space.values():
        ParamSpec.model_validate(entry)
    model = build_model(name, {}, META)
    assert isinstance(model, nn.Module) and model(torch.randn(2, 10)).shape == (2, 3)


def widths(model: nn.Module) -> list[int]:
    return [lin.out_features for lin in linears(model)][:-1]


def test_brick_is_the_default_shape():
    assert widths(build_model("mlp", {"n_layers": 3, "units": 40}, META)) == [40, 40, 40]
    assert widths(build_model("mlp", {"n_layers": 3, "units": 40, "shape": "brick"}, META)) == [40, 40, 40]


@pytest.mark.parametrize("n_layers, units, expected", [
    (1, 64, [64]),
    (2, 64, [64, 34]),               # 64 - 1 * (64 - 3) / 2 = 33.5, halves round up
    (4, 256, [256, 193, 130, 66]),   # steps of (256 - 3) / 4 = 63.25
    (3, 3, [3, 3, 3]),               # no wider than the output: a brick
    (2, 2, [2, 2]),                  # narrower than the output: never widened
])
def test_funnel_shrinks_linearly_towards_the_output(n_layers, units, expected):
    model = build_model("mlp", {"n_layers": n_layers, "units": units, "shape": "funnel"}, META)
    assert widths(model) == expected
    assert model(torch.randn(4, 10)).shape == (4, 3)


def test_funnel_with_no_hidden_layer_is_linear():
    model = build_model("mlp", {"n_layers": 0, "units": 64, "shape": "funnel"}, META)
    assert widths(model) == [] and count_parameters(model) == 10 * 3 + 3


def test_per_layer_units_win_over_the_shape():
    params = {"n_layers": 3, "units": 90, "shape": "funnel", "units_1": 7}
    assert widths(build_model("mlp", params, META)) == [90, 7, 32]  # step (90 - 3) / 3 = 29


def test_unknown_shape_is_a_config_error():
    with pytest.raises(ConfigError, match="shape must be one of .*got 'funel'.*did you mean 'funnel'"):
        build_model("mlp", {"shape": "funel"}, META)


def test_switches_and_recipe_keys_are_ignored_by_the_builder():
    """Cocktail switches and training values travel in the same parameter dict."""
    params = {"n_layers": 2, "units": 16, "use_dropout": False, "use_mixup": True, "mixup_alpha": 0.3}
    torch.manual_seed(0)
    a = build_model("mlp", params, META)
    torch.manual_seed(0)
    b = build_model("mlp", {"n_layers": 2, "units": 16}, META)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
