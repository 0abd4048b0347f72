"""Pruning, quantization and distillation: smaller saved models that load and predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.torch import load_file
from torch import nn

import nntune
from nntune.compression import compressed_model
from nntune.compression._run import test_scores as scores_on_test_rows

from ._helpers import fresh_predict_proba


def _stored_elements(model_dir) -> int:
    return sum(t.numel() for t in load_file(str(model_dir / "model.safetensors")).values())


def test_structured_pruning_saves_fewer_neurons(run_dir, tmp_path, raw_rows):
    out = tmp_path / "pruned"
    summary = nntune.compress(run_dir, method="prune", out=out, sparsity=0.5, structured=True,
                              steps=2, finetune_epochs=2)
    assert summary["details"]["widths_before"] == [32, 32]
    assert summary["details"]["widths_after"] == [16, 16] and summary["details"]["sparsity"] == 0.5
    assert summary["compressed"]["params"] < summary["original"]["params"]
    assert _stored_elements(out) < _stored_elements(run_dir / "model")
    model = nntune.load(out)
    assert [b.linear.out_features for b in model.module.blocks] == [16, 16]
    assert sum(p.numel() for p in model.module.parameters()) == summary["compressed"]["params"]
    assert model.predict_proba(raw_rows).shape == (len(raw_rows), 2)
    assert json.loads((out / "scores.json").read_text())["compression"]["method"] == "prune"
    assert 0.5 <= summary["compressed"]["score"] <= 1


def test_unstructured_pruning_zeros_the_claimed_share(run_dir, tmp_path):
    out = tmp_path / "sparse"
    summary = nntune.compress(run_dir, method="prune", out=out, sparsity=0.7, steps=2, finetune_epochs=1)
    weights = [m.weight for m in nntune.load(out).module.modules() if isinstance(m, nn.Linear)]
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros / total == pytest.approx(0.7, abs=1.0 / total)
    assert summary["details"]["sparsity"] == pytest.approx(zeros / total, abs=1e-6)
    assert summary["compressed"]["nonzero"] < summary["original"]["nonzero"]


def test_distillation_trains_a_smaller_student(run_dir, tmp_path, raw_rows):
    out = tmp_path / "student"
    summary = nntune.compress(run_dir, method="distill", out=out, student_units=8, temperature=3.0, alpha=0.5)
    assert summary["details"]["student_units"] == 8
    assert summary["compressed"]["params"] < summary["original"]["params"]
    model = nntune.load(out)
    assert model.info["params"]["units"] == 8
    assert set(model.predict(raw_rows)) <= set(nntune.load(run_dir / "model").classes_)


def test_quantized_model_loads_and_agrees(run_dir, tmp_path, raw_rows):
    out = tmp_path / "int8"
    summary = nntune.compress(run_dir, method="quantize", out=out)
    # Even this 2,000-weight network: int8 values, biases, three small headers; batch norm folded.
    assert summary["compressed"]["size_bytes"] * 3 < summary["original"]["size_bytes"]
    assert summary["details"]["batch_norm"] == "folded into the Linear layers"
    linear = sum(m.weight.numel() + m.bias.numel() for m in nntune.load(run_dir / "model").module.modules()
                 if isinstance(m, nn.Linear))
    assert summary["compressed"]["params"] == linear
    proba = nntune.load(out).predict_proba(raw_rows)
    original = nntune.load(run_dir / "model").predict_proba(raw_rows)
    assert np.abs(proba - original).max() < 0.05  # int8 weights: close, not equal


@pytest.mark.slow  # a fresh Python process (seconds of imports)
def test_residual_network_pruned_structurally_reloads_and_predicts_the_same(residual_run, tmp_path, raw_rows):
    model, _, _ = compressed_model(residual_run, "prune", sparsity=0.5, structured=True, steps=2,
                                   finetune_epochs=3)
    details = model.info["compression"]
    assert details["residual_streams"] == [[0, 1, 2]] and details["widths_after"] == [16, 16, 16]
    assert [b.residual for b in model.module.blocks] == [False, True, True]
    out = model.save(tmp_path / "pruned")
    assert _stored_elements(out) < _stored_elements(residual_run.model_dir) / 2
    proba = model.predict_proba(raw_rows)
    assert np.abs(fresh_predict_proba(out, raw_rows, tmp_path) - proba).max() < 1e-6
    before = scores_on_test_rows(residual_run.model.module, residual_run)["accuracy"]
    assert scores_on_test_rows(model.module, residual_run)["accuracy"] >= before - 0.05
