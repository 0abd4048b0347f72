"""The convolutional families: cnn (images, signals, time series, texts), capsnet (small images)
and cnn_rnn (signals, time series). Tiny inputs and a few epochs each, so the file runs in seconds."""

from __future__ import annotations

import io

import numpy as np
import optuna
import pytest
import torch
from torch import nn

from nntune.errors import ConfigError
from nntune.models import ModelMeta, build_model, count_parameters, family_names, get_family
from nntune.models.capsnet import squash
from nntune.models.cnn import Resize
from nntune.search._space import parse_space, suggest
from nntune.training import fit, get_metric, make_head

from .._references import at_least_linear

VOCAB = 50
SHAPES = {"image": (1, 8, 8), "signal": (2, 32), "timeseries": (2, 24), "text": (16,)}
CASES = [("cnn", "image"), ("cnn", "signal"), ("cnn", "timeseries"), ("cnn", "text"),
         ("capsnet", "image"), ("cnn_rnn", "signal"), ("cnn_rnn", "timeseries")]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks run fastest on one thread, and the test machine's cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def meta_for(kind: str, output_dim: int = 3, shape: tuple[int, ...] | None = None,
             task: str = "multiclass") -> ModelMeta:
    shape = shape or SHAPES[kind]
    return ModelMeta(int(np.prod(shape)), output_dim, task, kind, shape,
                     vocab_size=VOCAB if kind == "text" else 0)


def random_batch(kind: str, n: int, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    shape = shape or SHAPES[kind]
    if kind == "text":
        return torch.randint(0, VOCAB, (n, *shape))
    return torch.randn(n, *shape)


def learnable(kind: str, n: int, rng: np.random.Generator, classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Images: the class is which quadrant is bright. Signals and windows: the sign of a bump at
    a random time. Texts: whether token 5 occurs."""
    y = rng.integers(0, classes, n)
    if kind == "text":
        X = rng.integers(10, VOCAB, (n, *SHAPES[kind]))
        rows = np.flatnonzero(y == 1)
        X[rows, rng.integers(0, SHAPES[kind][0], len(rows))] = 5
        return X.astype(np.int64), y
    X = rng.normal(0, 0.5, (n, *SHAPES[kind])).astype(np.float32)
    if kind == "image":
        half = SHAPES[kind][1] // 2
        for i, label in enumerate(y):
            top, left = divmod(int(label), 2)
            X[i, 0, top * half:(top + 1) * half, left * half:(left + 1) * half] += 1.0
        return X, y
    t = np.arange(SHAPES[kind][1])
    for i, label in enumerate(y):
        X[i, 0] += (2 * label - 1) * 1.5 * np.exp(-0.5 * ((t - rng.integers(4, len(t) - 4)) / 2) ** 2)
    return X, y


@pytest.mark.parametrize("family, kind", CASES)
def test_defaults_build_and_give_one_output_row_per_sample(family, kind):
    assert kind in get_family(family).data_kinds and family in family_names(kind)
    model = build_model(family, {}, meta_for(kind))
    assert model(random_batch(kind, 4)).shape == (4, 3)


@pytest.mark.parametrize("family, kind", CASES)
def test_learns_a_simple_problem_in_a_few_epochs(family, kind):
    torch.manual_seed(0)
    classes = 4 if family == "capsnet" else 2  # capsules: one per quadrant
    X, y = learnable(kind, 256, np.random.default_rng(0), classes)
    task = "multiclass" if classes > 2 else "binary"
    model = build_model(family, {}, meta_for(kind, classes, task=task))
    result = fit(model, make_head(task, y[:160], classes, {}), X[:160], y[:160],
                 {"lr": 0.01, "batch_size": 32, "max_epochs": 4, "patience": 4},
                 X_val=X[160:], y_val=y[160:], metric=get_metric("accuracy", task))
    at_least_linear(result.best_score, X[:160], y[:160], X[160:], y[160:], margin=0.1)


def conv_widths(model: nn.Module) -> list[int]:
    return [m.out_channels for m in model.modules() if isinstance(m, nn.Conv1d | nn.Conv2d)]


def test_depth_and_width_multipliers_scale_blocks_and_channels():
    meta = meta_for("image")
    base = build_model("cnn", {"n_blocks": 2, "channels": 16}, meta)
    assert conv_widths(base) == [16, 32]
    deeper = build_model("cnn", {"n_blocks": 2, "channels": 16, "depth_mult": 2.0}, meta)
    assert conv_widths(deeper) == [16, 32, 64, 128]
    wider = build_model("cnn", {"n_blocks": 2, "channels": 16, "width_mult": 1.5}, meta)
    assert conv_widths(wider) == [24, 48] and count_parameters(wider) > count_parameters(base)
    assert conv_widths(build_model("cnn", {"n_blocks": 3, "depth_mult": 1.5}, meta)) == [32, 64, 128, 256, 256]


@pytest.mark.parametrize("kind, resized", [("image", (4, 4)), ("signal", (16,))])
def test_resolution_mult_resizes_images_and_signals_without_changing_weights(kind, resized):
    meta = meta_for(kind)
    full = build_model("cnn", {}, meta)
    half = build_model("cnn", {"resolution_mult": 0.5}, meta)
    assert [m.size for m in half.modules() if isinstance(m, Resize)] == [resized]
    assert count_parameters(half) == count_parameters(full)
    half.load_state_dict(full.state_dict())  # the same weights fit any resolution
    assert half(random_batch(kind, 3)).shape == (3, 3)


@pytest.mark.parametrize("kind", ["text", "timeseries"])
def test_resolution_mult_leaves_texts_and_time_series_alone(kind):
    model = build_model("cnn", {"resolution_mult": 0.5}, meta_for(kind))
    assert not any(isinstance(m, Resize) for m in model.modules())


def test_pooling_stops_before_a_side_drops_below_two():
    model = build_model("cnn", {"n_blocks": 4, "channel_growth": 1.0}, meta_for("image"))
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 2  # 8 -> 4 -> 2
    assert model(random_batch("image", 2)).shape == (2, 3)


def test_head_units_add_one_hidden_layer():
    linears = [m for m in build_model("cnn", {"head_units": 20}, meta_for("signal")).modules()
               if isinstance(m, nn.Linear)]
    assert [lin.out_features for lin in linears] == [20, 3]


@pytest.mark.parametrize("family", ["cnn", "cnn_rnn"])
def test_lookback_keeps_only_the_last_steps(family):
    model = build_model(family, {"lookback": 8}, meta_for("timeseries")).eval()
    x = random_batch("timeseries", 3)
    changed = x.clone()
    changed[:, :, :-8] = torch.randn(3, 2, 16)
    assert torch.equal(model(x), model(changed))
    changed[:, :, -1] += 1.0
    assert not torch.equal(model(x), model(changed))


def test_capsnet_outputs_are_log_odds_of_capsule_lengths():
    torch.manual_seed(0)
    model = build_model("capsnet", {"routing_iters": 3}, meta_for("image", 4)).eval()
    x = random_batch("image", 5)
    lengths = squash(model.class_capsules(x)).norm(dim=-1)
    assert ((lengths >= 0) & (lengths < 1)).all()
    logits = model(x)
    assert torch.allclose(logits, torch.log(lengths / (1 - lengths)), atol=1e-4)
    assert torch.allclose(logits.softmax(dim=1).sum(dim=1), torch.ones(5))
    once = build_model("capsnet", {"routing_iters": 1}, meta_for("image", 4)).eval()
    once.load_state_dict(model.state_dict())
    assert not torch.allclose(once(x), logits)  # agreement re-weights the votes


def test_squash_keeps_direction_and_bounds_length():
    s = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    v = squash(s)
    assert torch.allclose(v[0].norm(), torch.tensor(25 / 26)) and torch.allclose(v[0] / v[0].norm(), s[0] / 5)
    assert torch.equal(v[1], torch.zeros(2))


def test_capsnet_pools_large_images_to_a_small_capsule_grid():
    shape = (1, 28, 28)
    model = build_model("capsnet", {"primary_caps": 4}, meta_for("image", 10, shape))
    assert model.votes.shape == (4 * 7 * 7, 10, 16, 8)
    assert model(random_batch("image", 2, shape)).shape == (2, 10)


@pytest.mark.parametrize("family, params, kind, message", [
    ("cnn", {"n_blocks": 0}, "image", "n_blocks must be >= 1; got 0"),
    ("cnn", {"activation": "rellu"}, "image", "activation must be one of .*did you mean 'relu'"),
    ("cnn", {"pool": "maxx"}, "signal", "pool must be one of .*got 'maxx'"),
    ("cnn", {"resolution_mult": 1.5}, "image", r"resolution_mult must be in \(0, 1\]; got 1.5"),
    ("cnn", {"kernel_size": "big"}, "image", "kernel_size must be >= 1; got 'big'"),
    ("cnn", {"dropout": 1.0}, "text", r"dropout must be in \[0, 1\); got 1.0"),
    ("cnn", {}, "table", "cnn data kind must be one of .*got 'table'"),
    ("capsnet", {"routing_iters": 0}, "image", "routing_iters must be >= 1; got 0"),
    ("capsnet", {}, "signal", "capsnet takes images"),
    ("cnn_rnn", {"cell": "lstmm"}, "signal", "cell must be one of .*did you mean 'lstm'"),
    ("cnn_rnn", {"bidirectional": "yes"}, "signal", "bidirectional must be true or false; got 'yes'"),
    ("cnn_rnn", {"hidden": 0}, "timeseries", "hidden must be >= 1; got 0"),
])
def test_bad_params_are_config_errors_that_name_them(family, params, kind, message):
    meta = ModelMeta(4, 3, "multiclass", "table") if kind == "table" else meta_for(kind)
    with pytest.raises(ConfigError, match=message):
        build_model(family, params, meta)


def test_capsnet_refuses_regression():
    with pytest.raises(ConfigError, match="capsnet classifies"):
        build_model("capsnet", {}, meta_for("image", 1, task="regression"))


@pytest.mark.parametrize("family, kind", CASES)
def test_saved_weights_predict_identically(family, kind):
    torch.manual_seed(0)
    model = build_model(family, {}, meta_for(kind))
    model(random_batch(kind, 8))  # moves batch-norm statistics off their initial values
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    torch.manual_seed(1)
    loaded = build_model(family, {}, meta_for(kind))
    loaded.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
    x = random_batch(kind, 4)
    assert torch.equal(model.eval()(x), loaded.eval()(x))


@pytest.mark.parametrize("family, kind, params", [
    ("cnn", "image", {"n_blocks": 3, "channels": 12, "kernel_size": 5, "norm": "none", "head_units": 7,
                      "width_mult": 1.3, "depth_mult": 1.4}),
    ("cnn", "text", {"channels": 8, "channel_growth": 1.0, "embed_dim": 6}),
    ("capsnet", "image", {"conv_channels": 40, "primary_caps": 5}),
    ("cnn_rnn", "signal", {"conv_blocks": 3, "channels": 9, "kernel_size": 7, "cell": "gru", "hidden": 11,
                           "bidirectional": True}),
])
def test_shape_of_weights_rebuilds_a_network_the_weights_fit(family, kind, params):
    meta = meta_for(kind)
    state = build_model(family, params, meta).state_dict()
    shape = get_family(family).shape_of_weights(state)
    assert set(shape) <= set(get_family(family).shape_keys)
    build_model(family, shape, meta).load_state_dict(state)  # strict: every name and shape fits


@pytest.mark.parametrize("family", ["cnn", "capsnet", "cnn_rnn"])
def test_default_space_parses_and_suggests_buildable_params(family):
    spec = get_family(family)
    space, fixed = parse_space(spec.space)
    assert set(space) == set(spec.space) and not fixed
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(2):
        params = suggest(study.ask(), space, fixed)
        assert set(params) == set(spec.space)
        for kind in spec.data_kinds:
            assert build_model(family, params, meta_for(kind)).eval()(random_batch(kind, 2)).shape == (2, 3)


@pytest.mark.parametrize("family", ["cnn", "capsnet", "cnn_rnn"])
def test_starting_recipes_build_for_every_kind_the_family_takes(family):
    spec = get_family(family)
    assert spec.starting_points
    for recipe in spec.starting_points:
        for kind in spec.data_kinds:
            assert build_model(family, recipe, meta_for(kind)).eval()(random_batch(kind, 2)).shape == (2, 3)


@pytest.mark.parametrize("kind", ["image", "signal"])
def test_cnn_default_space_keeps_the_whole_input_and_plain_multipliers(kind):
    # MNIST-1D: searching resolution_mult shrank every trial's 40-sample signal (docs/benchmarks.md)
    spec = get_family("cnn")
    assert not {"resolution_mult", "depth_mult", "width_mult"} & set(spec.space)
    model = build_model("cnn", spec.defaults, meta_for(kind))
    assert not any(isinstance(m, Resize) for m in model.modules())
