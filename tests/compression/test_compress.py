"""Pruning, quantization and distillation: smaller saved models that load and predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.torch import load_file
from torch import nn

import nntune


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
    assert summary["compressed"]["size_bytes"] < summary["original"]["size_bytes"]
    assert summary["compressed"]["params"] == summary["original"]["params"]
    proba = nntune.load(out).predict_proba(raw_rows)
    original = nntune.load(run_dir / "model").predict_proba(raw_rows)
    assert np.abs(proba - original).max() < 0.05  # int8 weights: close, not equal
