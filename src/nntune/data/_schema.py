"""The columns a model expects, and the checks and conversions applied to every frame it sees.

The schema is plain JSON, saved with the model, so new data is checked against the exact columns
and kinds the model was trained on before anything reaches scikit-learn or torch.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..errors import DataError

# Datetime columns become numbers a network can use; the parts chosen cover trend and cycles.
DATETIME_PARTS = ("epoch_days", "year", "month", "dayofweek", "hour")
# Networks, inputs and scaled targets are float32: a larger magnitude would become infinite.
LARGEST_NUMBER = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # 'numeric' | 'categorical' | 'datetime'


@dataclass(frozen=True)
class Schema:
    columns: tuple[Column, ...]

    @property
    def numeric(self) -> list[str]:
        out = []
        for c in self.columns:
            if c.kind == "numeric":
                out.append(c.name)
            elif c.kind == "datetime":
                out.extend(f"{c.name}__{part}" for part in DATETIME_PARTS)
        return out

    @property
    def categorical(self) -> list[str]:
        return [c.name for c in self.columns if c.kind == "categorical"]

    def to_json(self) -> list[dict]:
        return [asdict(c) for c in self.columns]

    @classmethod
    def from_json(cls, items: list[dict]) -> Schema:
        return cls(tuple(Column(**item) for item in items))


def check_numbers(values: np.ndarray | pd.Series, what: str,
                  instead: str = "replace them with numbers, or leave those cells empty to mark them missing") -> None:
    """Refuse infinite values and magnitudes beyond float32 in the numbers of `what` ("column 'x'");
    `instead` says what to do with the infinities.

    An infinity is refused rather than read as missing: it comes from a division by zero or an
    overflow upstream, and imputing the median for "larger than any number" would hide that.
    NaN stays what it is: a missing value.
    """
    numbers = np.asarray(values, dtype=np.float64)
    infinite = np.isinf(numbers)
    if infinite.any():
        raise DataError(f"{what} holds {int(infinite.sum())} infinite value(s) (inf or -inf); {instead}")
    huge = np.abs(numbers) > LARGEST_NUMBER  # NaN compares False
    if huge.any():
        raise DataError(f"{what} holds {int(huge.sum())} value(s) such as {numbers[huge][0]:.3g}, beyond "
                        f"{LARGEST_NUMBER:.3g} (the largest float32, which nntune's networks compute in); rescale "
                        "the column (e.g. divide it or take its log)")


def infer_schema(frame: pd.DataFrame) -> Schema:
    """Classify each feature column as numeric, categorical or datetime."""
    return Schema(tuple(Column(str(name), _kind(frame[name])) for name in frame.columns))


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    sample = series.dropna().astype(str).head(200)
    if len(sample) and not sample.str.fullmatch(r"[-+.\deE]+").all():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
        if parsed.notna().mean() >= 0.95 and sample.str.contains(r"\d[-/:]\d").mean() >= 0.95:
            return "datetime"
    return "categorical"


def conform(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Check `frame` against `schema` and return the frame the preprocessor expects.

    Raises DataError naming missing columns or columns whose values are of the wrong type.
    """
    def expanded(column: Column) -> bool:  # a date column already split into its parts (conformed)
        return column.kind == "datetime" and all(f"{column.name}__{part}" in frame.columns for part in DATETIME_PARTS)

    missing = [c.name for c in schema.columns if c.name not in frame.columns and not expanded(c)]
    if missing:
        raise DataError(f"the data lacks column(s) the model needs: {', '.join(missing)}")
    names = [c.name for c in schema.columns]
    if list(frame.columns) == names and all(
            c.kind == "numeric" and frame[c.name].dtype == np.float32 for c in schema.columns):
        for column in schema.columns:
            check_numbers(frame[column.name], f"column '{column.name}'")
        return frame  # already what the preprocessor takes: no copy of a large table
    out: dict[str, pd.Series] = {}
    for column in schema.columns:
        values = frame[column.name] if column.name in frame.columns else None
        if column.kind == "numeric":
            converted = pd.to_numeric(values.astype("object") if values.dtype == bool else values,
                                      errors="coerce")
            bad = values[converted.isna() & values.notna()]
            if len(bad):
                raise DataError(
                    f"column '{column.name}' must be numeric; found value '{bad.iloc[0]}'"
                )
            check_numbers(converted, f"column '{column.name}'")  # before float32 turns 1e308 into inf
            out[column.name] = converted.astype("float32")
        elif column.kind == "categorical":
            out[column.name] = values.astype("object").where(values.notna(), np.nan).map(
                lambda v: v if v is np.nan else str(v)
            )
        elif column.name not in frame.columns:  # its parts, as conform wrote them
            for part in DATETIME_PARTS:
                out[f"{column.name}__{part}"] = pd.to_numeric(frame[f"{column.name}__{part}"]).astype("float64")
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                stamps = pd.to_datetime(values, errors="coerce", format="mixed")
            bad = values[stamps.isna() & values.notna()]
            if len(bad):
                raise DataError(
                    f"column '{column.name}' must hold dates/times; found value '{bad.iloc[0]}'"
                )
            if getattr(stamps.dt, "tz", None) is not None:
                stamps = stamps.dt.tz_convert(None)
            out[f"{column.name}__epoch_days"] = (
                (stamps - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400.0
            )
            out[f"{column.name}__year"] = stamps.dt.year.astype("float64")
            out[f"{column.name}__month"] = stamps.dt.month.astype("float64")
            out[f"{column.name}__dayofweek"] = stamps.dt.day_of_week.astype("float64")
            out[f"{column.name}__hour"] = stamps.dt.hour.astype("float64")
    return pd.DataFrame(out, index=frame.index)
