"""Turn whatever the user hands over (a path, a DataFrame, arrays, a built-in name) into one table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, check_choice, did_you_mean

BUILTIN_DATASETS = ("digits", "breast_cancer", "wine", "iris", "diabetes")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")


def is_url(path: str | Path) -> bool:
    return isinstance(path, str) and path.split("://", 1)[0] in ("http", "https")


def fetch(url: str) -> bytes:
    """The bytes behind an http(s) URL, with an error that names it."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except Exception as exc:
        raise DataError(f"data URL '{url}' could not be fetched: {exc}".splitlines()[0]) from None


def read_table(path: str | Path, content: bytes | None = None) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file (or http(s) URL) into a DataFrame, with errors that
    name the file. `content`: the file's bytes when they are already in memory."""
    if is_url(path):
        content = fetch(str(path)) if content is None else content
        path = Path(str(path).split("?", 1)[0].rsplit("/", 1)[-1] or "data.csv")
    else:
        path = Path(path)
    if content is not None:
        import io

        return _parse(path, io.BytesIO(content))
    if not path.exists():
        raise DataError(f"data file '{path}' does not exist")
    if path.is_dir():
        raise DataError(f"data path '{path}' is a directory; expected a {'/'.join(TABLE_SUFFIXES)} file")
    return _parse(path, path)


def _parse(path: Path, source) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(source)
        elif suffix in (".csv", ".txt"):
            frame = pd.read_csv(source, sep=None, engine="python") if suffix == ".txt" else pd.read_csv(source)
        elif suffix == ".tsv":
            frame = pd.read_csv(source, sep="\t")
        else:
            raise DataError(
                f"data file '{path}' has suffix '{suffix}'; accepted: {', '.join(TABLE_SUFFIXES)}"
            )
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"data file '{path}' is empty") from None
    except Exception as exc:  # parser errors of every kind end up here
        raise DataError(f"data file '{path}' could not be read: {exc}".splitlines()[0]) from exc
    if frame.empty:
        raise DataError(f"data file '{path}' has no rows")
    return frame


def builtin_dataset(name: str) -> tuple[pd.DataFrame, str]:
    """Load one of scikit-learn's bundled data sets as a frame; returns (frame, target column)."""
    from sklearn import datasets

    check_choice("dataset", name, BUILTIN_DATASETS)
    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.copy()
    if name in ("digits", "breast_cancer", "wine", "iris"):
        # Keep class names readable in predictions where scikit-learn provides them.
        names = np.asarray(bunch.target_names)
        if name != "digits":
            frame["target"] = names[frame["target"].to_numpy()]
    return frame, "target"


def as_table(
    data: str | Path | pd.DataFrame | np.ndarray | None,
    target: str | None = None,
    y: np.ndarray | pd.Series | None = None,
    dataset: str | None = None,
) -> tuple[pd.DataFrame, pd.Series, str]:
    """Resolve the user's data into (features, target, name).

    Exactly one of `data` or `dataset` is given. `data` is a path, a DataFrame holding the
    `target` column, or a feature array with the labels in `y`.
    """
    if (data is None) == (dataset is None):
        raise DataError("give exactly one of data (a file, DataFrame or array) or dataset (a built-in name)")
    if dataset is not None:
        frame, default_target = builtin_dataset(dataset)
        target = target or default_target
        name = dataset
    elif isinstance(data, np.ndarray):
        if y is None:
            raise DataError("a feature array needs its labels: pass y=...")
        labels = pd.Series(np.asarray(y), name="target")
        if len(data) != len(labels):
            raise DataError(f"X has {len(data)} rows but y has {len(labels)}")
        array = data.reshape(len(data), -1) if data.ndim != 2 else data
        # No copy: the frame is a read-only view of the user's array (nntune never writes to it).
        features = pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])], copy=False)
        return _labelled_only(features, labels, "arrays")
    elif isinstance(data, pd.DataFrame):
        frame, name = data, "dataframe"
        if y is not None:
            frame = frame.copy()
            frame["target"] = np.asarray(y)
            target = "target"
    else:
        frame = read_table(data)
        name = Path(data).stem
    if target is None:
        raise DataError("no target column given: pass --target COLUMN (data.target in the config)")
    if target not in frame.columns:
        columns = [str(c) for c in frame.columns]
        shown = ", ".join(columns[:20]) + (", ..." if len(columns) > 20 else "")
        raise DataError(
            f"target column '{target}' is not in the data{did_you_mean(target, columns)}; columns are: {shown}"
        )
    if len(frame) == 0:
        raise DataError("the data has no rows")
    position = frame.columns.get_loc(target)
    if position == len(frame.columns) - 1:  # slices are views: no copy of a large table
        features = frame.iloc[:, :-1]
    elif position == 0:
        features = frame.iloc[:, 1:]
    else:
        features = frame.drop(columns=[target])
    features = features.set_axis([str(c) for c in features.columns], axis=1)
    return _labelled_only(features, frame[target], name)


def _labelled_only(features: pd.DataFrame, labels: pd.Series, name: str) -> tuple[pd.DataFrame, pd.Series, str]:
    """Drop rows without a label (copying only when there are such rows)."""
    if features.shape[1] == 0:
        raise DataError(f"the data has no feature columns besides the target '{labels.name}'")
    labelled = labels.notna().to_numpy()
    if not labelled.any():
        raise DataError(f"target column '{labels.name}' has no values")
    if not labelled.all():
        features = features.loc[labelled].reset_index(drop=True)
        labels = labels.loc[labelled].reset_index(drop=True)
    return features, labels, name
