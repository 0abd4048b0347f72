"""Time series as forecasting windows: a CSV with a time column and value columns becomes
samples of the last `lookback` steps of every value column, labelled with the target column's
value `horizon` steps after each window.

The samples are in time order and marked `chronological`, so the splits keep the future out
of training (see `split_train_test` and `make_folds`), and the `WindowScaler` is fitted on the
training windows only. `seasonal_naive` is the baseline every forecast should beat: the value
one season before the target ("same month last year").
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, did_you_mean
from ._arrays import ArrayData, register_encoder
from ._schema import check_numbers
from ._sources import read_table

# A step longer than this many usual steps is a missing period, one shorter than its inverse an
# extra row: months (28 to 31 days) pass, a skipped month (59 to 62 days) does not.
STEP_TOLERANCE = 1.5
# The season a sampling interval usually has: (name, shortest step, longest step in days, period).
FREQUENCIES = (
    ("hourly", 1 / 24, 1 / 24, 24),
    ("daily", 1, 1, 7),
    ("weekly", 7, 7, 52),
    ("monthly", 28, 31, 12),
    ("quarterly", 89, 92, 4),
)


@dataclass
class TimeSeriesData(ArrayData):
    """ArrayData of forecasting windows that keeps the sorted series they were cut from.

    Sample i's window covers series positions i .. i+lookback-1 and its label is the target at
    position i+lookback-1+horizon (`target_positions`). `series`: the target column (float64),
    `times`: the sorted time stamps; neither is shown by describe().
    """

    series: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    times: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)

    def target_positions(self, rows: np.ndarray) -> np.ndarray:
        """Positions in `series` and `times` of the given samples' targets."""
        return np.asarray(rows, dtype=np.int64) + self.details["lookback"] - 1 + self.details["horizon"]


def load_timeseries(path: str | Path, *, time_column: str | None, target: str | None = None,
                    lookback: int = 24, horizon: int = 1) -> TimeSeriesData:
    """Read a time series from a CSV/TSV/Parquet file into forecasting windows (called by
    `load_data` for `--time-column`).

    Every column but `time_column` is a value column and an input channel; `target` (default:
    the only value column) is the one forecast. Rows are sorted by time; duplicated or
    unparseable time stamps, a missing period (a step much longer than the usual one), missing
    or infinite values are errors, not guessed at.

    >>> data = load_timeseries("airline_passengers.csv", time_column="Month", lookback=12)  # doctest: +SKIP
    >>> data.features.shape, data.details["seasonal_period"]  # doctest: +SKIP
    ((132, 1, 12), 12)
    """
    lookback, horizon = _positive("lookback", lookback), _positive("horizon", horizon)
    path = Path(path)
    frame = read_table(path)
    frame.columns = [str(c) for c in frame.columns]
    times = _sorted_times(frame, time_column, path)
    order = np.argsort(times, kind="stable")
    frame, times = frame.iloc[order].reset_index(drop=True), times[order]
    _check_steps(times, time_column)
    columns = [c for c in frame.columns if c != time_column]
    target = _target(columns, target, path)
    values = _values(frame, columns)
    n_windows = len(values) - lookback - horizon + 1
    if n_windows < 1:
        raise DataError(f"'{path.name}' has {len(values)} rows: too few for one window of lookback {lookback} "
                        f"and horizon {horizon} (that needs {lookback + horizon} rows)")
    # (steps - lookback + 1, channels, lookback) views; only windows with a label are kept.
    windows = np.lib.stride_tricks.sliding_window_view(values, lookback, axis=0)[:n_windows]
    series = values[:, columns.index(target)]
    details: dict[str, Any] = {"time_column": time_column, "start": _stamp(times[0]), "end": _stamp(times[-1]),
                               "steps": len(values), "lookback": lookback, "horizon": horizon,
                               "columns": columns}
    details.update(_season(times))
    return TimeSeriesData(
        np.ascontiguousarray(windows, dtype=np.float32), series[lookback - 1 + horizon:].copy(), "regression",
        "timeseries", path.stem, partial(WindowScaler, columns, target=target), target=target, chronological=True,
        details=details, series=series, times=times)


def seasonal_naive(data: ArrayData, rows: np.ndarray, period: int | None = None) -> np.ndarray:
    """The seasonal naive forecast of the given samples: the target's value `period` steps
    before each sample's target (default: the inferred `seasonal_period`, 12 for monthly data).

    Used by the benchmarks as the baseline a network must beat. `period` must be at least the
    horizon: a value fewer than `horizon` steps before the target is not known at forecast time.
    """
    if not isinstance(data, TimeSeriesData):
        raise DataError(f"seasonal_naive needs time-series windows from load_timeseries; got {data.kind} data")
    period = period if period is not None else data.details.get("seasonal_period")
    if period is None:
        raise ConfigError(f"no seasonal period could be inferred for '{data.name}' (its time steps are not hourly, "
                          "daily, weekly, monthly or quarterly); pass period=...")
    horizon = data.details["horizon"]
    if int(period) < horizon:
        raise ConfigError(f"period must be >= the horizon ({horizon}): a value fewer than {horizon} steps before "
                          f"the target is not known when forecasting; got {period}")
    before = data.target_positions(rows) - int(period)
    if (before < 0).any():
        raise DataError(f"{int((before < 0).sum())} of the samples have no value {period} steps before their target "
                        "(the series starts too late for them); pass later rows or a shorter period")
    return data.series[before]


class WindowScaler:
    """Standardizes each value column of windows (N, C, lookback) with the mean and std of the
    training windows' values. The regression target is not scaled here (the regression head
    standardizes it from the training targets).

    `encode_split` fits it on the training rows, which for time series are the earliest
    windows, so no value of a later period moves the scaling. Each value is counted once per
    window that holds it: only the first and last lookback-1 steps weigh a little less.
    """

    name: ClassVar[str] = "window_scaler"

    def __init__(self, columns: list[str], mean: list[float] | None = None, std: list[float] | None = None,
                 lookback: int | None = None, target: str | None = None) -> None:
        self.columns, self.mean, self.std, self.lookback = list(columns), mean, std, lookback
        self.target = target if target in self.columns else self.columns[0]

    def fit(self, X: np.ndarray) -> WindowScaler:
        X = self._checked(X, fitted=False)
        self.mean = X.mean(axis=(0, 2), dtype=np.float64).tolist()
        std = X.std(axis=(0, 2), dtype=np.float64)
        # A column constant in training keeps its scale: dividing by ~0 would blow up later values.
        self.std = np.where(std > 1e-8, std, 1.0).tolist()
        self.lookback = int(X.shape[2])
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        X = self._checked(X, fitted=True)
        mean = np.asarray(self.mean, dtype=np.float32).reshape(1, -1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(1, -1, 1)
        return np.ascontiguousarray((X - mean) / std, dtype=np.float32)

    def _checked(self, X: np.ndarray, fitted: bool) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        if fitted and self.mean is None:
            raise DataError("the window scaler is not fitted: call fit(training windows) first")
        expected = (len(self.columns), self.lookback if fitted else X.shape[-1])
        if X.ndim != 3 or tuple(X.shape[1:]) != expected:
            raise DataError(f"windows of shape {tuple(X.shape[1:])}; expected (columns, lookback) = {expected} "
                            f"for the columns {', '.join(self.columns)}")
        return X

    def model_input(self) -> dict[str, Any]:
        # Forecasters add their output to the window's last value of the target's channel
        # (see models._inputs.LastValueSkip).
        return {"input_shape": (len(self.columns), self.lookback),
                "extra": {"target_channel": self.columns.index(self.target)}}

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "columns": self.columns, "mean": self.mean, "std": self.std,
                "lookback": self.lookback, "target": self.target}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WindowScaler:
        return cls(data["columns"], data["mean"], data["std"], data["lookback"], data.get("target"))


register_encoder(WindowScaler.name, WindowScaler.from_json)


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"{name} must be a whole number of steps >= 1; got {value!r}")
    return int(value)


def _sorted_times(frame: pd.DataFrame, time_column: str | None, path: Path) -> np.ndarray:
    """The time column as datetime64 (or numbers, for a column of step counts), checked."""
    columns = list(frame.columns)
    if not time_column:
        raise DataError("a time series needs its time column: pass --time-column COLUMN (data.time_column)")
    if time_column not in columns:
        raise DataError(f"time column '{time_column}' is not in '{path.name}'{did_you_mean(time_column, columns)}; "
                        f"its columns: {', '.join(columns[:20])}")
    raw = frame[time_column]
    if raw.isna().any():
        raise DataError(f"time column '{time_column}' has {int(raw.isna().sum())} empty value(s)")
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        times = raw.to_numpy()  # step numbers: ordered, without a calendar
    else:
        with warnings.catch_warnings():  # pandas warns when it parses stamp by stamp; bad ones are errors below
            warnings.simplefilter("ignore", UserWarning)
            parsed = pd.to_datetime(raw, errors="coerce")
        bad = parsed.isna().to_numpy()
        if bad.any():
            raise DataError(f"time column '{time_column}' has {int(bad.sum())} value(s) that are not dates, such as "
                            f"'{raw[bad].iloc[0]}'; write every time stamp in one format, e.g. 1981-01-31 or "
                            "1981-01-31 13:00")
        times = parsed.to_numpy()
    duplicated = pd.Series(times).duplicated()
    if duplicated.any():
        raise DataError(f"time column '{time_column}' repeats {int(duplicated.sum())} time stamp(s), such as "
                        f"'{raw[duplicated.to_numpy()].iloc[0]}'; a series has one row per time step "
                        "(aggregate the duplicates first)")
    return times


def _check_steps(times: np.ndarray, time_column: str) -> None:
    """Refuse a series whose sorted time stamps skip a period or crowd one: a window would
    then span more (or less) time than the others, and "one season back" would miss its
    season. Refused rather than filled in: which values the missing rows held is the user's
    call (a gap in sales is not a gap in temperatures)."""
    if len(times) < 3:
        return
    steps = _step_sizes(times)
    usual = float(np.median(steps))
    long, short = steps > STEP_TOLERANCE * usual, steps < usual / STEP_TOLERANCE
    one_row_per_step = "a series needs one row per time step"
    numbered = "or, if each row is one step, number the rows 0, 1, 2, ... in the time column"
    if long.any():
        i = int(np.flatnonzero(long)[0])
        raise DataError(f"time column '{time_column}' skips from {_stamp(times[i])} to {_stamp(times[i + 1])} "
                        f"while its steps are {_step_name(times, usual)} ({int(long.sum())} such gap(s)); "
                        f"{one_row_per_step}: add the missing rows (their values filled, e.g. interpolated) "
                        f"{numbered}")
    if short.any():
        i = int(np.flatnonzero(short)[0])
        raise DataError(f"time column '{time_column}' has the rows {_stamp(times[i])} and {_stamp(times[i + 1])} "
                        f"closer than its steps of {_step_name(times, usual)} ({int(short.sum())} such step(s)); "
                        f"{one_row_per_step}: aggregate the extra rows {numbered}")


def _step_sizes(times: np.ndarray) -> np.ndarray:
    """The steps between sorted time stamps: numbers, days, or business days for a daily series
    that never falls on a weekend (trading days: a weekend is no gap)."""
    if not np.issubdtype(times.dtype, np.datetime64):
        return np.diff(times).astype(np.float64)
    days = np.diff(times) / np.timedelta64(1, "D")
    if _business_daily(times, days):
        dates = times.astype("datetime64[D]")
        return np.busday_count(dates[:-1], dates[1:]).astype(np.float64)
    return days


def _business_daily(times: np.ndarray, days: np.ndarray) -> bool:
    return bool(np.median(days) == 1 and np.is_busday(times.astype("datetime64[D]")).all())


def _step_name(times: np.ndarray, usual: float) -> str:
    """The usual step as people say it: 'monthly', '1 business day', '15 minutes', '2 (steps)'."""
    if not np.issubdtype(times.dtype, np.datetime64):
        return f"{usual:g}"
    if _business_daily(times, np.diff(times) / np.timedelta64(1, "D")):
        return "1 business day"
    for name, low, high, _ in FREQUENCIES:
        if low - 1e-9 <= usual <= high + 1e-9:
            return name
    for unit, days in (("day", 1), ("hour", 1 / 24), ("minute", 1 / 1440), ("second", 1 / 86400)):
        if usual >= days:
            return f"{usual / days:g} {unit}(s)"
    return f"{usual * 86400:g} second(s)"


def _target(columns: list[str], target: str | None, path: Path) -> str:
    if not columns:
        raise DataError(f"'{path.name}' has no value column besides the time column")
    if target is None:
        if len(columns) > 1:
            raise DataError(f"'{path.name}' has several value columns ({', '.join(columns)}): "
                            "name the one to forecast with --target COLUMN")
        return columns[0]
    if target not in columns:
        raise DataError(f"target column '{target}' is not a value column of '{path.name}'"
                        f"{did_you_mean(target, columns)}; value columns: {', '.join(columns)}")
    return target


def _values(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The value columns as float64 (steps, channels); no missing value is filled in silently."""
    for column in columns:
        numbers = pd.to_numeric(frame[column], errors="coerce")
        not_numbers = numbers.isna() & frame[column].notna()
        if not_numbers.any():
            raise DataError(f"value column '{column}' holds {int(not_numbers.sum())} value(s) that are not numbers, "
                            f"such as '{frame[column][not_numbers].iloc[0]}'; drop the column or clean it")
        if numbers.isna().any():
            raise DataError(f"value column '{column}' has {int(numbers.isna().sum())} missing value(s); fill them "
                            "(e.g. forward-fill or interpolate) before forecasting: nntune does not guess them")
        check_numbers(numbers, f"value column '{column}'", instead="replace them with numbers (e.g. interpolated)")
    return frame[columns].apply(pd.to_numeric).to_numpy(dtype=np.float64)


def _stamp(time: Any) -> str:
    """A time stamp as people write it: 1949-01-01, 2020-01-01 13:00:00, or a step number."""
    if not isinstance(time, np.datetime64):
        return str(time)
    stamp = pd.Timestamp(time)
    return stamp.date().isoformat() if stamp == stamp.normalize() else stamp.isoformat(sep=" ")


def _season(times: np.ndarray) -> dict[str, Any]:
    """The sampling frequency and its usual seasonal period, from the median time step."""
    if len(times) < 2 or not np.issubdtype(times.dtype, np.datetime64):
        return {}
    days = np.median(np.diff(times)) / np.timedelta64(1, "D")
    for name, low, high, period in FREQUENCIES:
        if low - 1e-9 <= days <= high + 1e-9:
            return {"frequency": name, "seasonal_period": period}
    return {}
