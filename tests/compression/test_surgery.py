"""The layer operations behind pruning: folding weight norm, refusing skip connections."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nntune.compression import RunData
from nntune.compression._prune import prune
from nntune.compression._surgery import plain_copy
from nntune.errors import ConfigError
from nntune.models import ModelMeta, build_model
from nntune.models.mlp import DEFAULTS
from nntune.predictor import Predictor
from nntune.training import Head


def _run(params: dict) -> RunData:
    params = {**DEFAULTS, **params}
    module = build_model("mlp", params, ModelMeta(4, 2, "binary"))
    info = {"family": "mlp", "params": params, "input_dim": 4, "classes": [0, 1], "epochs": 1}
    model = Predictor(module, None, Head("binary", "cross_entropy", n_classes=2), None, info)
    X = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    return RunData(model, None, X, y, X, y, "accuracy")


def test_weight_norm_folds_into_plain_weights_without_changing_outputs():
    run = _run({"n_layers": 2, "units": 8, "norm": "weight"})
    plain, params = plain_copy(run.model.module, run.params)
    X = torch.from_numpy(run.X_train)
    with torch.no_grad():
        assert torch.allclose(plain(X), run.model.module.eval()(X), atol=1e-6)
    assert params["norm"] == "none"
    assert build_model("mlp", params, ModelMeta(4, 2, "binary")).load_state_dict(plain.state_dict())


def test_structured_pruning_refuses_skip_connections():
    run = _run({"n_layers": 2, "units": 8, "residual": True})
    with pytest.raises(ConfigError, match="cannot keep this model's skip connections"):
        prune(run, 0.5, structured=True, steps=1, finetune_epochs=0)


def test_structured_pruning_needs_hidden_layers():
    with pytest.raises(ConfigError, match="no hidden layers"):
        prune(_run({"n_layers": 0}), 0.5, structured=True, steps=1, finetune_epochs=0)


@pytest.mark.parametrize("norm", ["layer", "weight"])
def test_structured_pruning_rebuilds_norm_layers(norm):
    run = _run({"n_layers": 2, "units": 8, "shape": "funnel", "norm": norm})
    module, params, details = prune(run, 0.5, structured=True, steps=2, finetune_epochs=1)
    assert details["widths_after"] == [round(w / 2) for w in details["widths_before"]]
    rebuilt = build_model("mlp", params, ModelMeta(4, 2, "binary"))
    rebuilt.load_state_dict(module.state_dict())  # the saved params describe the smaller network
    assert rebuilt(torch.from_numpy(run.X_test)).shape == (16, 2)


def test_the_api_function_is_not_shadowed_by_the_package():
    import nntune
    import nntune.compression  # noqa: F401  (importing the package leaves nntune.compress alone)

    assert callable(nntune.compress)
    with pytest.raises(nntune.ConfigError, match="method must be one of"):
        nntune.compress("nowhere", method="zip")
