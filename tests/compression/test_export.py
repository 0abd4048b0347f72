"""Exports and compressed models reload in a fresh process and predict as they did here."""

from __future__ import annotations

import json

import numpy as np
import pytest

import nntune
from nntune.compression import compressed_model

from ._helpers import run_data, run_fresh

FRESH = """
import sys, json
import numpy as np
import onnxruntime as ort
import pandas as pd
import skops.io as sio
import torch
import nntune

rows = np.load(sys.argv[1])
int8 = nntune.load(sys.argv[2]).predict_proba(rows)
outputs = {"int8": int8}
for name, file in (("onnx", sys.argv[3]), ("torchscript", sys.argv[4])):
    prep_file = file.rsplit(".", 1)[0] + ".preprocessor.skops"
    prep = sio.load(prep_file, trusted=sio.get_untrusted_types(file=prep_file))
    names = json.load(open(file + ".json"))["raw_columns"]
    frame = pd.DataFrame(rows, columns=names)
    X = np.asarray(prep.transform(frame), dtype=np.float32)
    if name == "onnx":
        session = ort.InferenceSession(file, providers=["CPUExecutionProvider"])
        outputs[name] = session.run(None, {"features": X})[0]
    else:
        outputs[name] = torch.jit.load(file)(torch.from_numpy(X)).detach().numpy()
np.savez(sys.argv[5], **outputs)
"""


@pytest.mark.slow  # a fresh Python process (seconds of imports)
def test_exports_and_int8_model_reload_in_a_fresh_process(run_dir, tmp_path, raw_rows):
    quantized, weights, _ = compressed_model(run_data(run_dir), "quantize")
    int8 = quantized.save(tmp_path / "int8", weights=weights)
    onnx = nntune.export(run_dir, format="onnx", out=tmp_path / "net.onnx")
    script = nntune.export(run_dir, format="torchscript", out=tmp_path / "net.pt")
    for info in (onnx, script):
        assert (tmp_path / info["preprocessor"]).exists() and info["output_meaning"] == "probabilities"
    rows = tmp_path / "rows.npy"
    np.save(rows, raw_rows)
    result = tmp_path / "fresh.npz"
    run_fresh(FRESH, rows, int8, onnx["path"], script["path"], result)
    fresh = np.load(result)
    here = nntune.load(run_dir / "model").predict_proba(raw_rows)
    assert np.abs(fresh["onnx"] - here).max() < 1e-5
    assert np.abs(fresh["torchscript"] - here).max() < 1e-5
    assert np.abs(fresh["int8"] - quantized.predict_proba(raw_rows)).max() < 1e-6  # the model as made here


def test_export_description(run_dir, tmp_path):
    info = nntune.export(run_dir, format="torchscript", out=tmp_path / "m.pt")
    described = json.loads((tmp_path / "m.pt.json").read_text())
    assert described["task"] == "binary" or described["classes"]
    assert described["input"] == "features" and len(described["input_columns"]) == 30
    assert info["checked_rows"] > 0
