"""A trained model with its preprocessing: saved as a directory, loaded without running code.

Weights go to safetensors, the fitted scikit-learn preprocessing to skops (loaded only when
every object in it is of a type nntune itself writes there), everything else to JSON.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import skops.io as sio  # imported with the module: it takes a second, best not mid-run
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from . import __version__
from ._atomic import write_dir, write_json
from .data import Schema, conform, encoder_from_json, transform
from .errors import ConfigError, DataError, ModelDirError
from .models import Ensemble, ModelMeta
from .search import HyperParameters, make_module
from .training import Head, pick_device, predict_outputs

FORMAT = "nntune-model"
FILES = {"config": "model.json", "weights": "model.safetensors",
         "preprocessor": "preprocessor.skops", "scores": "scores.json",
         "encoder": "encoder.json"}  # the encoder of images, signals, texts, ... (tables: preprocessor)
# Exactly the types nntune's own preprocessing (data/_preprocess.py) is made of; a file holding
# any other type, or any function or method (skops would call it), is refused before loading.
# A test fits the preprocessing on varied tables and checks that it needs no more than these.
TRUSTED_TYPES = frozenset({
    "sklearn.compose._column_transformer.ColumnTransformer", "sklearn.pipeline.Pipeline",
    "sklearn.impute._base.SimpleImputer", "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._encoders.OneHotEncoder", "nntune.data._preprocess.RobustScaleSmoothClip",
    "numpy.ndarray", "numpy.dtype", "numpy.float32", "numpy.float64", "numpy.int64",
    "builtins.dict", "builtins.list", "builtins.tuple", "builtins.slice", "builtins.str",
    "builtins.int", "builtins.float", "builtins.bool", "builtins.NoneType",
})
# skops' node kinds that rebuild data; the others (FunctionNode, MethodNode, ...) run code.
TRUSTED_NODES = frozenset({"ObjectNode", "DictNode", "ListNode", "TupleNode", "SliceNode", "JsonNode",
                           "TypeNode", "DTypeNode", "NdArrayNode"})
PRETRAINED_SOURCES = "an nntune model directory or a .safetensors file"


class Predictor:
    """Predicts on new frames with the same columns the model was trained on.

    >>> model = nntune.load("runs/churn/model")
    >>> model.predict(new_df)          # labels or values
    >>> model.predict_proba(new_df)    # class probabilities, columns in model.classes_
    """

    def __init__(self, module: nn.Module, preprocessor: Any, head: Head, schema: Schema,
                 info: dict[str, Any]) -> None:
        self.module = module.eval()
        self.preprocessor = preprocessor
        self.head = head
        self.schema = schema
        self.info = info
        self.classes_ = np.asarray(info.get("classes", []))
        self.device = next(module.parameters()).device if any(True for _ in module.parameters()) \
            else torch.device("cpu")

    @property
    def task(self) -> str:
        return self.head.task

    @property
    def kind(self) -> str:
        return self.info.get("meta", {}).get("kind", "table")

    def _encode_samples(self, data: Any) -> np.ndarray:
        """Images, signals, windows, texts or node indices through the model's encoder."""
        if isinstance(data, pd.DataFrame):
            column = self.info.get("input_column")
            if column is not None and column not in data.columns and column.isdigit() and int(column) in data.columns:
                column = int(column)  # a file without a header, read with numbered columns
            if column is None or column not in data.columns:
                raise DataError(f"this {self.kind} model takes an array of samples"
                                + (f" or a frame with column '{column}'" if column else ""))
            data = data[column].to_numpy()
        elif isinstance(data, list | tuple):
            data = np.asarray(data, dtype=object if self.kind == "text" else None)
        if not isinstance(data, np.ndarray):
            raise DataError(f"predict takes an array of {self.kind} samples; got {type(data).__name__}")
        return self.preprocessor.transform(data)

    def _scores(self, data: pd.DataFrame | np.ndarray) -> np.ndarray:
        if hasattr(self.preprocessor, "model_input"):
            X = self._encode_samples(data)
            return self.head.scores(predict_outputs(self.module, torch.from_numpy(X).to(self.device)))
        if isinstance(data, np.ndarray):
            names = [c.name for c in self.schema.columns]
            array = data.reshape(len(data), -1)
            if array.shape[1] != len(names):
                raise DataError(f"the array has {array.shape[1]} columns; the model needs {len(names)}")
            data = pd.DataFrame(array, columns=names)
        if not isinstance(data, pd.DataFrame):
            raise DataError(f"predict takes a DataFrame or array; got {type(data).__name__}")
        X = transform(self.preprocessor, conform(data, self.schema))
        outputs = predict_outputs(self.module, torch.from_numpy(X).to(self.device))
        return self.head.scores(outputs)

    def predict(self, data: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Class labels (as the target held them) or predicted values."""
        scores = self._scores(data)
        if self.task == "regression":
            return scores
        return self.classes_[scores.argmax(axis=1)]

    def predict_proba(self, data: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), columns ordered as `classes_`."""
        if self.task == "regression":
            raise DataError("predict_proba needs a classification model; this one does regression")
        return self._scores(data)

    def save(self, path: str | Path, scores: dict[str, Any] | None = None,
             weights: dict[str, torch.Tensor] | None = None) -> Path:
        """Write the model directory atomically and return its path. `weights` replaces the
        module's state dict where that holds more than plain tensors (int8 layers)."""
        path = Path(path)

        def fill(tmp: Path) -> None:
            state = weights if weights is not None else \
                {k: v.detach().cpu().contiguous() for k, v in self.module.state_dict().items()}
            save_file(state, str(tmp / FILES["weights"]))
            if hasattr(self.preprocessor, "model_input"):
                write_json(tmp / FILES["encoder"], self.preprocessor.to_json())
            else:
                sio.dump(self.preprocessor, tmp / FILES["preprocessor"])
            config = {"format": FORMAT, "format_version": 1, "nntune_version": __version__, **self.info,
                      "head": self.head.to_json(),
                      "schema": self.schema.to_json() if self.schema is not None else None}
            write_json(tmp / FILES["config"], config)
            write_json(tmp / FILES["scores"], scores or {})
        write_dir(path, fill)
        return path


def load(path: str | Path, build_model: Callable[[HyperParameters], nn.Module] | None = None,
         device: str = "cpu") -> Predictor:
    """Load a model directory written by nntune. `build_model` is needed only for models that
    a user's own function built."""
    path = Path(path)
    config_file = path / FILES["config"]
    if not path.is_dir() or not config_file.exists():
        raise ModelDirError(f"'{path}' is not an nntune model directory (no {FILES['config']} in it)")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as exc:
        raise ModelDirError(f"'{config_file}' is not valid JSON: {exc}") from None
    if config.get("format") != FORMAT:
        raise ModelDirError(f"'{path}' is not an nntune model directory (format is not {FORMAT})")
    samples = config.get("meta", {}).get("kind", "table") != "table"
    for key in ("weights", "encoder" if samples else "preprocessor"):
        if not (path / FILES[key]).exists():
            raise ModelDirError(f"model directory '{path}' is incomplete: {FILES[key]} is missing")
    head = Head(**config["head"])
    meta = ModelMeta.from_json(config["meta"]) if "meta" in config else \
        ModelMeta(config["input_dim"], head.output_dim, head.task)
    family = config["family"]
    if family == "custom" and build_model is None:
        raise ModelDirError(f"the model in '{path}' was built by a user function; "
                            "pass it as load(path, build_model=fn)")
    source = build_model if family == "custom" else family
    ensemble = config.get("ensemble")
    if ensemble:  # fold models of one or more configurations, averaged (execution/_final.py)
        configs = ensemble.get("configs") or [config["params"]]
        which = ensemble.get("member_config") or [0] * int(ensemble["members"])
        module = Ensemble([make_module(source, configs[i], meta)[0] for i in which], ensemble["combine"],
                          ensemble.get("weights"), ensemble.get("scales"), ensemble.get("shifts"))
    else:
        module, _ = make_module(source, config["params"], meta)
    if config.get("compression", {}).get("method") == "quantize":
        from .compression._quantize import restore  # int8 layers: rebuilt, then filled; CPU only

        module = restore(module, load_file(str(path / FILES["weights"])))
    else:
        module.load_state_dict(load_file(str(path / FILES["weights"])))
        module.to(pick_device(device))
    if samples:
        encoder = encoder_from_json(json.loads((path / FILES["encoder"]).read_text()))
        return Predictor(module, encoder, head, None, config)
    return Predictor(module, _load_preprocessor(path / FILES["preprocessor"]), head,
                     Schema.from_json(config["schema"]), config)


def _load_preprocessor(file: Path) -> Any:
    refused = sorted(name for name, node in stored_types(file)
                     if name not in TRUSTED_TYPES or node not in TRUSTED_NODES)
    if refused:
        raise ModelDirError(f"'{file}' holds types nntune does not load: {', '.join(refused)}")
    return sio.load(file, trusted=sio.get_untrusted_types(file=file))


def stored_types(file: Path) -> set[tuple[str, str]]:
    """Every (type, skops node kind) a skops file would rebuild, read from its schema without
    loading anything. skops trusts much of scikit-learn by default, functions included; this
    sees all of it."""
    try:
        with zipfile.ZipFile(file) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelDirError(f"'{file}' is not a skops file nntune wrote ({exc})") from None
    found: set[tuple[str, str]] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node:
                found.add((f"{node.get('__module__')}.{node['__class__']}", str(node.get("__loader__"))))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def load_pretrained(source: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a trained network, by state-dict name, from a model directory that
    nntune wrote (its weights file; of an ensemble of fold models, the first one's) or from a
    .safetensors file.

    >>> state = load_pretrained("runs/churn_2023/model")
    """
    path = Path(source)
    file = path / FILES["weights"] if path.is_dir() else path
    if not file.is_file():
        what = f"holds no {FILES['weights']}" if path.is_dir() else "does not exist"
        raise ConfigError(f"pretrained weights: '{path}' {what}; accepted: {PRETRAINED_SOURCES}")
    try:
        state = load_file(str(file))
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"pretrained weights: '{file}' is not readable as safetensors ({exc}); "
                          f"accepted: {PRETRAINED_SOURCES}") from None
    config = _config(path / FILES["config"]) if path.is_dir() else {}
    if config.get("compression", {}).get("method") == "quantize":
        raise ConfigError(f"pretrained weights: '{path}' holds int8-quantized layers, packed for "
                          "inference; start from the uncompressed model instead")
    if config.get("ensemble"):  # fold models of one shape: the first one starts the new network
        prefix = "members.0."
        state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    return state


def _config(file: Path) -> dict[str, Any]:
    """A model directory's config, or {} where it cannot be read."""
    try:
        config = json.loads(file.read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}
