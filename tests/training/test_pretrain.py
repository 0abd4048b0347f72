from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from nntune.errors import ConfigError
from nntune.models import ModelMeta, build_model
from nntune.training import (
    PRETRAIN_DEFAULTS,
    PRETRAIN_SPACE,
    apply_pretrained,
    predict_outputs,
    pretrain_encoder,
)

RECIPE = {"lr": 0.01, "batch_size": 64}


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    """600 handwritten digits, 64 pixels each scaled to [0, 1]."""
    return (load_digits().data[:600] / 16).astype(np.float32)


def mlp(n_layers: int = 2, norm: str = "batch"):
    torch.manual_seed(0)
    return build_model("mlp", {"n_layers": n_layers, "units": 32, "norm": norm}, ModelMeta(64, 10, "multiclass"))


@pytest.mark.parametrize(("loss", "ratio"), [("mse", 0.5), ("bce", 0.8)])
def test_reconstruction_loss_falls(pixels, loss, ratio):
    losses = pretrain_encoder(mlp(), pixels, RECIPE, epochs=8, loss=loss)
    assert len(losses) == 8
    assert losses[-1] < ratio * losses[0]


def test_encoder_learns_in_place_and_the_network_still_predicts(pixels):
    model = mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pretrain_encoder(model, pixels, RECIPE, epochs=3)
    after = model.state_dict()
    assert not torch.equal(after["blocks.0.linear.weight"], before["blocks.0.linear.weight"])
    assert not torch.equal(after["blocks.1.norm.running_mean"], before["blocks.1.norm.running_mean"])
    assert torch.equal(after["head.weight"], before["head.weight"])  # the decoder was separate
    assert set(after) == set(before)
    assert predict_outputs(model, torch.from_numpy(pixels)).shape == (len(pixels), 10)


def test_bce_outside_zero_one_names_the_range(pixels):
    with pytest.raises(ConfigError, match=r"\[0, 1\].*-0\.5 to 1\.5"):
        pretrain_encoder(mlp(), pixels * 2 - 0.5, RECIPE, epochs=2, loss="bce")


def test_a_network_without_hidden_layers_is_refused(pixels):
    with pytest.raises(ConfigError, match="at least one hidden layer"):
        pretrain_encoder(mlp(n_layers=0), pixels, RECIPE, epochs=2)
    with pytest.raises(ConfigError, match="nntune MLP"):
        pretrain_encoder(torch.nn.Linear(64, 10), pixels, RECIPE, epochs=2)


def test_denoising_leaves_the_inputs_alone_and_repeats(pixels):
    original = pixels.copy()
    first = pretrain_encoder(mlp(), pixels, RECIPE, epochs=2, noise=0.2, seed=3)
    assert np.array_equal(pixels, original)
    assert all(np.isfinite(first))
    assert pretrain_encoder(mlp(), pixels, RECIPE, epochs=2, noise=0.2, seed=3) == first


def test_zero_epochs_is_off(pixels):
    model = mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert pretrain_encoder(model, pixels, RECIPE, epochs=0) == []
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_past_deadline_stops_after_one_epoch(pixels):
    assert len(pretrain_encoder(mlp(), pixels, RECIPE, epochs=5, deadline=0.0)) == 1


def test_layers_frozen_for_transfer_stay_as_loaded(pixels):
    model = mlp()
    apply_pretrained(model, {k: v.clone() for k, v in model.state_dict().items()}, freeze_layers=1, lr_scale=1.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pretrain_encoder(model, pixels, RECIPE, epochs=2)
    after = model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("blocks.0."))
    assert not torch.equal(after["blocks.1.linear.weight"], before["blocks.1.linear.weight"])


def test_defaults_and_space_share_their_keys():
    assert set(PRETRAIN_SPACE) <= set(PRETRAIN_DEFAULTS)
