"""Time series as forecasting windows: exact windows and labels, time-ordered splits, scaling
without look-ahead, the seasonal naive baseline, and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nntune.data import encode_split, encoder_from_json, make_folds, split_train_test
from nntune.data._timeseries import WindowScaler, load_timeseries, seasonal_naive
from nntune.errors import ConfigError, DataError

from ..conftest import TEST_DATA

AIRLINE = TEST_DATA / "airline_passengers.csv"


@pytest.fixture(scope="module")
def passengers() -> np.ndarray:
    return pd.read_csv(AIRLINE)["Passengers"].to_numpy(dtype=np.float64)


@pytest.fixture(scope="module")
def airline():
    return load_timeseries(AIRLINE, time_column="Month", lookback=12, horizon=1)


def test_windows_are_the_last_lookback_values_and_the_label_the_next_one(airline, passengers):
    assert airline.features.shape == (144 - 12, 1, 12) and airline.features.dtype == np.float32
    assert airline.features[0, 0].tolist() == [112, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118]
    assert airline.y[0] == 115 and airline.y[-1] == 432  # 1950-01 and 1960-12
    for i in (0, 1, 57, 131):
        assert airline.features[i, 0].tolist() == passengers[i:i + 12].tolist()
        assert airline.y[i] == passengers[i + 12]
    assert (airline.task, airline.kind, airline.chronological) == ("regression", "timeseries", True)
    described = airline.describe()
    assert described["rows"] == 132 and described["seasonal_period"] == 12 and described["frequency"] == "monthly"
    assert (described["start"], described["end"]) == ("1949-01-01", "1960-12-01")


def test_horizon_labels_the_value_that_many_steps_after_the_window(passengers):
    data = load_timeseries(AIRLINE, time_column="Month", lookback=6, horizon=3)
    assert len(data.y) == 144 - 6 - 3 + 1
    assert data.features[10, 0].tolist() == passengers[10:16].tolist() and data.y[10] == passengers[18]


def test_test_and_validation_targets_come_after_every_training_target(airline):
    train, test = split_train_test(airline, 0.2, seed=0)
    times = airline.times[airline.target_positions(np.arange(airline.n_rows))]
    assert len(test) == int(np.ceil(0.2 * 132))
    assert times[test].min() > times[train].max()
    (fit_rows, val_rows), = make_folds(airline, train, None, 0.2, seed=0)
    assert times[val_rows].min() > times[fit_rows].max()


def test_window_scaler_never_sees_the_test_period(airline, tmp_path):
    train, test = split_train_test(airline, 0.2, seed=0)
    first_test_target = int(airline.target_positions(test[:1])[0])
    fitted = encode_split(airline, train, test).preprocessor

    def refit(position: int) -> WindowScaler:
        frame = pd.read_csv(AIRLINE)
        frame.loc[position, "Passengers"] = 1e9
        frame.to_csv(tmp_path / "changed.csv", index=False)
        changed = load_timeseries(tmp_path / "changed.csv", time_column="Month", lookback=12)
        return encode_split(changed, *split_train_test(changed, 0.2, seed=0)).preprocessor

    for position in (first_test_target, 143):
        refitted = refit(position)
        assert (refitted.mean, refitted.std) == (fitted.mean, fitted.std)
    assert refit(first_test_target - 2).mean != fitted.mean  # a training-period value does count


def test_window_scaler_standardizes_inputs_and_round_trips_as_json(airline):
    train = np.arange(100)
    split = encode_split(airline, train, None)
    assert split.model_input()["input_shape"] == (1, 12)
    assert abs(float(split.X_train.mean())) < 1e-5 and abs(float(split.X_train.std()) - 1) < 1e-5
    assert np.array_equal(split.y_train, airline.y[train])  # the target stays in passengers
    again = encoder_from_json(split.preprocessor.to_json())
    assert np.array_equal(again.transform(airline.features), split.preprocessor.transform(airline.features))
    with pytest.raises(DataError, match=r"expected \(columns, lookback\) = \(1, 12\)"):
        again.transform(np.zeros((2, 1, 6), dtype=np.float32))


def test_several_value_columns_are_channels_and_need_a_target(tmp_path, passengers):
    frame = pd.read_csv(AIRLINE)
    frame["Rain"] = np.arange(144) * 0.5
    frame = frame.sample(frac=1.0, random_state=0)  # rows out of order: sorted on reading
    frame.to_csv(tmp_path / "two.csv", index=False)
    with pytest.raises(DataError, match="several value columns.*Passengers, Rain"):
        load_timeseries(tmp_path / "two.csv", time_column="Month")
    data = load_timeseries(tmp_path / "two.csv", time_column="Month", target="Passengers", lookback=12)
    assert data.features.shape == (132, 2, 12)
    assert data.features[3, 0].tolist() == passengers[3:15].tolist()
    assert data.features[3, 1].tolist() == (np.arange(3, 15) * 0.5).tolist()
    assert data.y[3] == passengers[15] and data.target == "Passengers"
    assert encode_split(data, np.arange(50), None).model_input()["input_shape"] == (2, 12)


def test_seasonal_naive_is_the_value_one_period_before_the_target(airline, passengers):
    _, test = split_train_test(airline, 0.2, seed=0)
    predicted = seasonal_naive(airline, test)  # the inferred period: 12 months
    assert predicted.tolist() == passengers[test].tolist()  # target at i + 12; a year before it: i
    assert seasonal_naive(airline, test, 1).tolist() == passengers[test + 11].tolist()
    with pytest.raises(DataError, match="no value 13 steps before"):
        seasonal_naive(airline, np.arange(5), 13)
    three_ahead = load_timeseries(AIRLINE, time_column="Month", lookback=12, horizon=3)
    with pytest.raises(ConfigError, match="period must be >= the horizon"):
        seasonal_naive(three_ahead, test, 2)


def write(tmp_path, frame: pd.DataFrame):
    path = tmp_path / "series.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("change, time_column, error", [
    (lambda f: f, "Mont", r"time column 'Mont' is not in 'series.csv' \(did you mean 'Month'\?\)"),
    (lambda f: f.assign(Month=["soon", *f.Month[1:]]), "Month", "'Month' has 1 value.*not dates.*'soon'"),
    (lambda f: f.assign(Month=[*f.Month[:-1], f.Month[0]]), "Month", "repeats 1 time stamp.*'1949-01'"),
    (lambda f: f.assign(Passengers=[np.nan, *f.Passengers[1:]]), "Month", "'Passengers' has 1 missing value"),
    (lambda f: f.assign(Passengers=["many", *f.Passengers[1:]]), "Month", "'Passengers' holds 1 value.*not numbers"),
    (lambda f: f.head(12), "Month", "12 rows: too few for one window of lookback 12 and horizon 1"),
])
def test_bad_series_are_refused_with_the_column_named(tmp_path, change, time_column, error):
    path = write(tmp_path, change(pd.read_csv(AIRLINE)))
    with pytest.raises(DataError, match=error):
        load_timeseries(path, time_column=time_column, lookback=12)


def test_lookback_and_horizon_must_be_positive_steps():
    with pytest.raises(ConfigError, match="horizon must be a whole number of steps >= 1; got 0"):
        load_timeseries(AIRLINE, time_column="Month", horizon=0)


@pytest.mark.parametrize("horizon", [1, 3])
def test_no_training_target_lies_after_the_forecast_origin_of_a_later_window(horizon):
    # A window's forecast origin is its last input; its target is `horizon` steps later. A
    # training target after the first test (or validation) window's origin is a value that
    # forecast could not know: the split leaves a gap of horizon - 1 windows.
    data = load_timeseries(AIRLINE, time_column="Month", lookback=12, horizon=horizon)

    def origin(rows: np.ndarray) -> int:
        return int(np.min(rows)) + 12 - 1

    train, test = split_train_test(data, 0.2, seed=0)
    assert len(test) == int(np.ceil(0.2 * data.n_rows))
    assert data.target_positions(train).max() == origin(test)  # at the origin: known, and nothing wasted
    for cv in (None, 3):
        for fit_rows, val_rows in make_folds(data, train, cv, 0.2, seed=0):
            assert data.target_positions(fit_rows).max() == origin(val_rows)


def test_too_short_a_series_for_its_folds_is_a_data_error(tmp_path):
    frame = pd.DataFrame({"t": np.arange(30), "v": np.sin(np.arange(30.0))})
    frame.to_csv(tmp_path / "short.csv", index=False)
    data = load_timeseries(tmp_path / "short.csv", time_column="t", lookback=4, horizon=6)
    train, _ = split_train_test(data, 0.2, seed=0)
    with pytest.raises(DataError, match="cv=8 .*horizon 6"):
        make_folds(data, train, 8, 0.2, seed=0)
    with pytest.raises(ConfigError, match="cv must be at least 2"):
        make_folds(data, train, 1, 0.2, seed=0)


def _series_file(tmp_path, times, values=None, name="series.csv"):
    values = np.arange(len(times), dtype=np.float64) if values is None else values
    pd.DataFrame({"t": times, "v": values}).to_csv(tmp_path / name, index=False)
    return tmp_path / name


def test_a_missing_period_is_refused_naming_the_first_gap(tmp_path):
    # It used to be read as if the rows were evenly spaced: windows over unequal spans.
    months = pd.date_range("2000-01-01", periods=60, freq="MS")
    with pytest.raises(DataError, match=r"time column 't' skips from 2001-08-01 to 2001-10-01 while its steps are "
                                        r"monthly \(1 such gap"):
        load_timeseries(_series_file(tmp_path, months.delete(20)), time_column="t", lookback=6)
    with pytest.raises(DataError, match=r"skips from 5 to 7 while its steps are 1 \(1 such gap"):
        load_timeseries(_series_file(tmp_path, np.delete(np.arange(40), 6)), time_column="t", lookback=6)
    hours = pd.date_range("2000-01-01", periods=60, freq="h")
    with pytest.raises(DataError, match=r"has the rows 2000-01-01 03:00:00 and 2000-01-01 03:20:00 closer than its "
                                        r"steps of hourly"):
        load_timeseries(_series_file(tmp_path, hours.insert(4, pd.Timestamp("2000-01-01 03:20"))),
                        time_column="t", lookback=6)


def test_month_lengths_and_weekends_of_trading_days_are_no_gaps(tmp_path):
    months = pd.date_range("2000-01-01", periods=60, freq="MS")  # steps of 28 to 31 days
    assert load_timeseries(_series_file(tmp_path, months), time_column="t", lookback=6).n_rows == 54
    trading = pd.bdate_range("2020-01-06", periods=60)
    assert load_timeseries(_series_file(tmp_path, trading), time_column="t", lookback=6).n_rows == 54
    with pytest.raises(DataError, match=r"skips from 2020-01-09 to 2020-01-13 while its steps are 1 business day"):
        load_timeseries(_series_file(tmp_path, trading.delete(4)), time_column="t", lookback=6)


@pytest.mark.parametrize("bad, message", [
    (np.inf, r"value column 'v' holds 1 infinite value\(s\) \(inf or -inf\); replace them with numbers"),
    (1e308, r"value column 'v' holds 1 value\(s\) such as 1e\+308, beyond 3.4e\+38"),
])
def test_infinite_and_overflowing_values_are_refused(tmp_path, bad, message):
    # They became NaN losses in every trial, after the study had begun.
    values = np.arange(40, dtype=np.float64)
    values[7] = bad
    with pytest.raises(DataError, match=message):
        load_timeseries(_series_file(tmp_path, np.arange(40), values), time_column="t", lookback=6)
