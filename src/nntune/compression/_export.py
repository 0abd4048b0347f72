"""Export a saved model's network as ONNX or TorchScript, with its preprocessing beside it.

`FILE` (model.onnx or model.pt) takes the preprocessed feature matrix (float32, one row per
example, in the columns of `FILE.preprocessor.skops`) and returns what `predict` works from:
class probabilities (n, n_classes) in the order of `classes`, or predicted values (n,) in the
target's units. `FILE.json` names the input columns, classes, task and output. The skops file
is nntune's own fitted scikit-learn preprocessing: load it with skops and `transform` raw rows.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._atomic import write_bytes, write_json
from ..errors import ConfigError, NntuneError, check_choice
from ..predictor import FILES, Predictor
from ..training import Head

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
TOLERANCE = 1e-5


class Scores(nn.Module):
    """The network followed by its head's mapping: probabilities, or values in target units."""

    def __init__(self, module: nn.Module, head: Head) -> None:
        super().__init__()
        self.module, self.task, self.bce = module, head.task, head.loss == "bce"
        self.register_buffer("y_mean", torch.tensor(head.y_mean, dtype=torch.float32))
        self.register_buffer("y_std", torch.tensor(head.y_std, dtype=torch.float32))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        outputs = self.module(features)
        if self.task == "regression":
            return outputs.reshape(-1) * self.y_std + self.y_mean
        if self.bce:
            p = torch.sigmoid(outputs.reshape(-1))
            return torch.stack([1.0 - p, p], dim=1)
        return torch.softmax(outputs, dim=1)


def sidecars(file: Path) -> tuple[Path, Path]:
    """Where the preprocessing and the description go: beside the network file."""
    # One description per network file (model.onnx.json, model.pt.json); the preprocessing is
    # the run's, whichever format, so exports of one run to one stem share it.
    return file.with_suffix(".preprocessor.skops"), file.with_name(f"{file.name}.json")


def export(model: Predictor, model_dir: Path, file: Path, fmt: str, X_check: np.ndarray) -> dict[str, Any]:
    """Write `file` and its sidecars; for ONNX, first check onnxruntime against PyTorch on
    `X_check` (the run's test rows). Nothing is written when a check fails."""
    check_choice("format", fmt, FORMATS)
    if model.kind != "table":
        raise ConfigError(f"export takes models of tables for now; this one is of {model.kind} data "
                          "(its encoder is not folded into an ONNX or TorchScript file yet)")
    if model.info.get("compression", {}).get("method") == "quantize":
        raise ConfigError("export takes float models; int8 dynamic layers have no ONNX/TorchScript form "
                          "nntune checks: export the run's model (or a pruned or distilled one)")
    wrapper = Scores(model.module.cpu().eval(), model.head).eval()
    X = torch.from_numpy(np.ascontiguousarray(X_check, dtype=np.float32))
    with torch.no_grad():
        expected = wrapper(X).numpy()
    data = _onnx(wrapper, X, expected) if fmt == "onnx" else _torchscript(wrapper, X)
    preprocessor, description = sidecars(file)
    write_bytes(file, data)
    tmp = preprocessor.with_name(f".{preprocessor.name}.tmp")
    shutil.copyfile(model_dir / FILES["preprocessor"], tmp)
    tmp.replace(preprocessor)
    info = {"format": fmt, "file": file.name, "preprocessor": preprocessor.name, "description": description.name,
            "input": "features",
            "input_columns": [str(c) for c in model.preprocessor.get_feature_names_out()],
            "output": "scores", "output_meaning": "values" if model.task == "regression" else "probabilities",
            "task": model.task, "classes": list(model.info.get("classes", [])),
            "raw_columns": [str(c.name) for c in model.schema.columns], "schema": model.schema.to_json(),
            "checked_rows": int(len(X))}
    write_json(description, info)
    return {**info, "path": str(file)}


def _onnx(wrapper: nn.Module, X: torch.Tensor, expected: np.ndarray) -> bytes:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("ONNX export needs onnx and onnxruntime: pip install 'nntune[export]'") from None
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it logs optional ops it skips (torchvision's)
    try:
        # The exporter prints its progress to stdout; a command's output is its own.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(wrapper, (X[:2],), None, dynamo=True, input_names=["features"],
                                        output_names=["scores"], external_data=False, verbose=False,
                                        dynamic_shapes=({0: torch.export.Dim("batch")},))
    finally:
        exporter_log.setLevel(level)
    data = program.model_proto.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: X.numpy()})[0]
    worst = float(np.max(np.abs(got - expected))) if len(expected) else 0.0
    if not worst <= TOLERANCE:
        raise NntuneError(f"onnxruntime's outputs differ from PyTorch's by up to {worst:.2e} on the test rows "
                          f"(allowed {TOLERANCE:.0e}); the ONNX file was not written")
    return data


def _torchscript(wrapper: nn.Module, X: torch.Tensor) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks TorchScript as deprecated; it still loads everywhere
        traced = torch.jit.trace(wrapper, X[:2], check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
    return buffer.getvalue()

