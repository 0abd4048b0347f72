"""Compression and export of a tuned model: pruning, int8 quantization, distillation, and
ONNX/TorchScript export. Every method writes a model directory that `nntune.load` reads.

The API (`nntune.compress`, `nntune.export`: the package is named apart from the function)
reads the run and hands over a `RunData`; this package only transforms, trains briefly, saves
and measures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._atomic import write_json
from ..errors import ConfigError, check_choice
from ..predictor import FILES, Predictor
from ._distill import distill
from ._export import FORMATS, export
from ._prune import CRITERIA, prune
from ._quantize import quantize
from ._run import RunData, count_params, measure
from ._surgery import fold_batch_norm, plain_copy

METHODS = ("prune", "quantize", "distill")
DEFAULT_SPARSITY = 0.8
# Which options each method reads; any other one given is a mistake worth naming.
OPTIONS = {"prune": {"sparsity", "structured", "criterion", "steps", "finetune_epochs"},
           "quantize": set(),
           "distill": {"student_units", "student_dropout", "temperature", "alpha", "epochs"}}


def check_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options given (not None) for `method`, checked before any work starts."""
    check_choice("method", method, METHODS)
    given = {k: v for k, v in options.items() if v is not None}
    for name in given:
        if name not in OPTIONS[method]:
            users = [m for m, names in OPTIONS.items() if name in names]
            raise ConfigError(f"option '{name}' applies to method {' or '.join(users) or 'none'}, not {method}")
    if method == "prune":
        sparsity = given.get("sparsity", DEFAULT_SPARSITY)
        if not 0 < sparsity < 1:
            raise ConfigError(f"sparsity must be in (0, 1), the share of weights (or neurons) removed; got {sparsity}")
        check_choice("criterion", given.get("criterion", "outgoing"), CRITERIA)
        if given.get("steps", 3) < 1:
            raise ConfigError(f"steps must be >= 1; got {given['steps']}")
        if given.get("finetune_epochs", 3) < 0:
            raise ConfigError(f"finetune_epochs must be >= 0; got {given['finetune_epochs']}")
    return given


def compress(run: RunData, method: str, out: Path, **options: Any) -> dict[str, Any]:
    """Compress the run's model with `method`, save it to `out`, and compare it with the
    original: parameters, weight-file bytes, median latency on the test rows, test score."""
    given = check_options(method, options)
    run.require_mlp(method)
    if out.resolve() == run.model_dir.resolve():
        raise ConfigError(f"the output directory '{out}' is the run's own model: choose another")
    before = measure(run.model.module.cpu().eval(), run.model_dir, run)
    model, weights, n_params = compressed_model(run, method, **given)
    model.save(out, weights=weights)
    after = measure(model.module, out, run, params=n_params)
    summary = {"method": method, "model_dir": str(out), "source": str(run.model_dir),
               "details": model.info["compression"], "original": before, "compressed": after}
    # Where the run's model keeps its test scores; the comparison goes beside them.
    write_json(out / FILES["scores"], {"test_scores": after["test_scores"], "metric": run.metric,
                                       "compression": summary})
    return summary


def compressed_model(run: RunData, method: str, **options: Any) -> tuple[Predictor, dict | None, int | None]:
    """The compressed model, not yet saved: (predictor, the weights to save where the module's
    state dict will not do, the parameter count where the module no longer holds parameters).
    `compress` saves and measures it; tests compare it with its reloaded copy."""
    given = check_options(method, options)
    weights, n_params = None, None
    if method == "prune":
        module, params, details = prune(run, **{"sparsity": DEFAULT_SPARSITY, **given})
    elif method == "quantize":
        plain, params = fold_batch_norm(*plain_copy(run.model.module, run.params))
        n_params = count_params(plain)
        module, weights = quantize(plain)
        folded = run.params.get("norm") == "batch" and params["norm"] == "none"
        details = {"dtype": "int8", "layers": "Linear", "scale": "one per layer",
                   "activations": "quantized per call (dynamic)",
                   "batch_norm": "folded into the Linear layers" if folded else "none"}
    else:
        names = {"student_units": "units", "student_dropout": "dropout"}
        module, params, details = distill(run, **{names.get(k, k): v for k, v in given.items()})
    info = {**run.model.info, "params": params, "compression": {"method": method, **details}}
    if "epochs" in details:  # a student trained for its own number of epochs
        info["epochs"] = details["epochs"]
    return Predictor(module, run.model.preprocessor, run.model.head, run.model.schema, info), weights, n_params


__all__ = ["FORMATS", "METHODS", "RunData", "check_options", "compress", "compressed_model", "export"]
