"""Data: read tables, detect the task, split without leakage, fit preprocessing on training rows."""

from ._arrays import KINDS, ArrayData, Encoder, Standardize, encode_labels, encoder_from_json, register_encoder
from ._fingerprint import check_same_data, data_reference, file_sha256, memory_sha256
from ._graph import GraphEncoder, load_graph
from ._images import load_images
from ._kinds import DataOptions, detect_kind, load_data
from ._preprocess import make_preprocessor, transform
from ._schema import Schema, conform, infer_schema
from ._signals import load_signals
from ._sources import BUILTIN_DATASETS, as_table, fetch, is_url, read_table
from ._tabular import (
    EncodedSplit,
    TabularData,
    attach_unlabeled,
    encode_folds,
    encode_split,
    encode_with,
    load_tabular,
    make_folds,
    row_positions,
    shares_encoding,
    split_train_test,
)
from ._task import TASKS, detect_task
from ._text import TextEncoder, load_text
from ._timeseries import TimeSeriesData, WindowScaler, load_timeseries, seasonal_naive

__all__ = [
    "DataOptions", "detect_kind", "load_data", "load_images", "load_signals", "TimeSeriesData", "WindowScaler",
    "load_timeseries", "seasonal_naive", "TextEncoder", "load_text", "GraphEncoder", "load_graph",
    "KINDS", "ArrayData", "Encoder", "Standardize", "encode_labels", "encoder_from_json", "register_encoder",
    "BUILTIN_DATASETS", "TASKS", "EncodedSplit", "Schema", "TabularData", "as_table", "attach_unlabeled",
    "check_same_data", "conform", "data_reference", "detect_task", "fetch", "file_sha256", "is_url",
    "memory_sha256", "encode_folds", "encode_split", "encode_with", "row_positions", "shares_encoding",
    "infer_schema", "load_tabular", "make_folds",
    "make_preprocessor", "read_table", "split_train_test", "transform",
]
