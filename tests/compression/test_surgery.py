"""The operations behind compression: folding weight and batch norm, structured pruning of
networks with and without skip connections, and distillation's no-teacher control."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nntune.compression import RunData
from nntune.compression._distill import distill
from nntune.compression._prune import prune
from nntune.compression._surgery import fold_batch_norm, plain_copy
from nntune.errors import ConfigError
from nntune.models import ModelMeta, build_model
from nntune.models.mlp import DEFAULTS
from nntune.predictor import Predictor
from nntune.training import Head


def _run(params: dict, input_dim: int = 4) -> RunData:
    params = {**DEFAULTS, **params}
    torch.manual_seed(0)
    module = build_model("mlp", params, ModelMeta(input_dim, 2, "binary"))
    info = {"family": "mlp", "params": params, "input_dim": input_dim, "classes": [0, 1], "epochs": 1}
    model = Predictor(module, None, Head("binary", "cross_entropy", n_classes=2), None, info)
    X = np.random.default_rng(0).normal(size=(16, input_dim)).astype(np.float32)
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


def test_batch_norm_folds_into_the_linear_layers_without_changing_outputs():
    run = _run({"n_layers": 2, "units": 8, "norm": "batch"})
    module = run.model.module
    module.train()(torch.randn(64, 4) * 3 + 1)  # statistics other than the initial 0 and 1
    folded, params = fold_batch_norm(module.eval(), run.params)
    X = torch.from_numpy(run.X_train)
    with torch.no_grad():
        assert torch.allclose(folded(X), module(X), atol=1e-5)
    assert params["norm"] == "none" and not any(isinstance(m, nn.BatchNorm1d) for m in folded.modules())


@pytest.mark.parametrize("criterion", ["outgoing", "incoming"])
@torch.no_grad()
def test_a_residual_stream_loses_the_same_neurons_in_every_coupled_layer(criterion):
    # Stream neurons 4-7 are dead in every layer that writes or reads them; pruning them
    # jointly leaves the function exactly as it was, pruning layer by layer would not.
    run = _run({"n_layers": 3, "units": 8, "residual": True}, input_dim=3)
    module = run.model.module.eval()
    for block in module.blocks:
        block.linear.weight[4:] = 0
        block.linear.bias[4:] = 0
        if block.residual:
            block.linear.weight[:, 4:] = 0
    module.head.weight[:, 4:] = 0
    pruned, params, details = prune(run, 0.5, structured=True, criterion=criterion, steps=1, finetune_epochs=0)
    assert details["residual_streams"] == [[0, 1, 2]] and details["widths_after"] == [4, 4, 4]
    assert [b.residual for b in pruned.blocks] == [False, True, True]
    X = torch.from_numpy(run.X_test)
    assert torch.allclose(pruned(X), module(X), atol=1e-6)
    build_model("mlp", params, ModelMeta(3, 2, "binary")).load_state_dict(pruned.state_dict())


def test_pruning_gives_no_block_a_shortcut_it_did_not_have():
    # Half of 8 is 4, as wide as the input: the first block would start adding its input.
    run = _run({"n_layers": 2, "units": 8, "residual": True})
    pruned, _, details = prune(run, 0.5, structured=True, steps=1, finetune_epochs=0)
    assert details["widths_after"] == [5, 5]
    assert [b.residual for b in pruned.blocks] == [False, True]


def test_a_stream_that_starts_at_the_inputs_keeps_its_neurons():
    run = _run({"n_layers": 2, "units": 4, "shape": "funnel", "residual": True})  # widths 4 (adds input), 3
    pruned, _, details = prune(run, 0.5, structured=True, steps=1, finetune_epochs=1)
    assert details["widths_after"] == [4, 2] and details["pinned_blocks"] == [0]
    assert [b.residual for b in pruned.blocks] == [True, False]
    with pytest.raises(ConfigError, match="cannot remove any neuron"):
        prune(_run({"n_layers": 2, "units": 4, "residual": True}), 0.5, structured=True, steps=1, finetune_epochs=0)


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


def test_alpha_zero_trains_the_student_on_the_labels_alone():
    # The no-teacher control: whatever the teacher outputs, the student comes out the same.
    runs = [_run({"n_layers": 1, "units": 8}) for _ in range(2)]
    with torch.no_grad():
        runs[1].model.module.head.weight.mul_(-3.0)
    students = [distill(run, units=4, alpha=0.0, epochs=2)[0] for run in runs]
    assert all(torch.equal(a, b) for a, b in zip(*(s.state_dict().values() for s in students), strict=True))
    _, params, details = distill(runs[0], units=4, epochs=1)
    assert params["dropout"] == 0.0 == details["student_dropout"]  # the soft targets regularize it
