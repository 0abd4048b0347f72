"""Where a study's data comes from, and a checksum to prove a worker reads the same data.

A study stores this reference, so a worker that joins it from another process or machine
loads the same rows from the same file (or URL, or built-in data set) and refuses data that
changed since the study began.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ._sources import is_url


def file_sha256(path: str | Path) -> str:
    """The file's checksum; for a folder (of images, or a graph's files) one over every file in
    it, by relative path and content."""
    path = Path(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(path)).encode() + b"\0" + file_sha256(file).encode())
        return digest.hexdigest()
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def bytes_sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def memory_sha256(data: pd.DataFrame | np.ndarray, y: Any = None) -> str:
    """A checksum of in-memory data: pandas' row hashes for a frame, raw bytes for arrays."""
    digest = hashlib.sha256()
    if isinstance(data, np.ndarray) and data.dtype == object:  # raw bytes would be pointers
        data = pd.DataFrame(data.reshape(len(data), -1))
    if isinstance(data, pd.DataFrame):
        digest.update(pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes())
        digest.update("\0".join(map(str, data.columns)).encode())
    else:
        digest.update(f"{data.shape}{data.dtype}".encode())
        digest.update(np.ascontiguousarray(data).tobytes())
    if y is not None:
        digest.update(pd.util.hash_pandas_object(pd.Series(np.asarray(y)), index=False).to_numpy().tobytes())
    return digest.hexdigest()


def data_reference(source: Any, dataset: str | None, y: Any = None,
                   content: bytes | None = None) -> dict[str, Any]:
    """{'kind': 'file'|'url'|'dataset'|'memory', ...} with a sha256 where there are bytes."""
    if dataset is not None and source is None:
        return {"kind": "dataset", "name": dataset}
    if isinstance(source, str | Path) and is_url(str(source)):
        return {"kind": "url", "url": str(source), "sha256": bytes_sha256(content) if content else None}
    if isinstance(source, str | Path):
        path = Path(source).resolve()
        return {"kind": "file", "path": str(path), "sha256": file_sha256(path)}
    return {"kind": "memory", "sha256": memory_sha256(source, y)}


def check_same_data(expected: dict[str, Any], actual: dict[str, Any]) -> None:
    """Raise DataError when data is not the study's: another built-in data set, or bytes with
    a different checksum."""
    if expected.get("kind") == "dataset" or actual.get("kind") == "dataset":
        if expected.get("name") != actual.get("name"):
            raise DataError(f"the study was started on {_describe(expected)}, not {_describe(actual)}; "
                            "every worker must read the same data")
        return
    want, got = expected.get("sha256"), actual.get("sha256")
    if want and got and want != got:
        where = actual.get("path") or actual.get("url") or "the data passed in"
        raise DataError(f"{where} has checksum {got[:12]}..., but the study was started on data with "
                        f"checksum {want[:12]}...; every worker must read the same data")


def _describe(ref: dict[str, Any]) -> str:
    if ref.get("kind") == "dataset":
        return f"the built-in data set '{ref.get('name')}'"
    return f"'{ref.get('path') or ref.get('url')}'" if ref.get("path") or ref.get("url") else "in-memory data"
