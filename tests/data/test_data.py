from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nntune.data import (
    conform,
    detect_task,
    encode_split,
    infer_schema,
    load_tabular,
    make_folds,
    read_table,
    split_train_test,
)
from nntune.errors import DataError
from tests.conftest import TEST_DATA


@pytest.mark.parametrize("values, task", [
    ([0, 1, 0, 1], "binary"),
    (["a", "b", "c", "a"], "multiclass"),
    ([True, False, True, False], "binary"),
    ([0.5, 1.7, 2.2, 3.9], "regression"),
    (list(range(50)), "regression"),
    ([1, 2, 3, 1, 2, 3], "multiclass"),
])
def test_task_detection(values, task):
    assert detect_task(pd.Series(values, name="y")) == task


def test_task_override_and_its_checks():
    assert detect_task(pd.Series([1, 2, 3, 4], name="y"), "regression") == "regression"
    with pytest.raises(DataError, match=r"regression target 'y' is not numeric \(found value 'abc'\)"):
        detect_task(pd.Series(["1.5", "abc"], name="y"), "regression")
    with pytest.raises(DataError, match="has only one class"):
        detect_task(pd.Series(["a", "a", "a"], name="y"))


def test_reads_csv_tsv_parquet(tmp_path, churn_frame):
    churn_frame.to_csv(tmp_path / "a.csv", index=False)
    churn_frame.to_csv(tmp_path / "a.tsv", sep="\t", index=False)
    churn_frame.to_parquet(tmp_path / "a.parquet", index=False)
    for name in ("a.csv", "a.tsv", "a.parquet"):
        frame = read_table(tmp_path / name)
        assert list(frame.columns) == list(churn_frame.columns)
        assert len(frame) == len(churn_frame)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="data file '.*missing.csv' does not exist"):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="is empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataError, match="suffix '.json'"):
        read_table(tmp_path / "x.json")


def test_missing_target_lists_columns_and_suggests(churn_frame):
    with pytest.raises(DataError, match=r"target column 'churn' .*did you mean 'churned'.*tenure"):
        load_tabular(churn_frame, "churn")


def test_arrays_and_builtins():
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    table = load_tabular(X, y=y)
    assert table.task == "binary" and list(table.features.columns) == ["x0", "x1", "x2"]
    wine = load_tabular(dataset="wine")
    assert wine.task == "multiclass" and len(wine.classes) == 3 and wine.n_rows == 178
    assert load_tabular(dataset="diabetes").task == "regression"


def test_split_is_stratified_and_disjoint():
    table = load_tabular(dataset="breast_cancer")
    train, test = split_train_test(table, 0.2, seed=3)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == table.n_rows
    share = table.y.mean()
    assert abs(table.y[test].mean() - share) < 0.02
    folds = make_folds(table, train, cv=5, val_size=0.2, seed=3)
    assert len(folds) == 5
    validation = np.concatenate([va for _, va in folds])
    assert sorted(validation) == sorted(train)  # every training row validates exactly once
    for tr, va in folds:
        assert len(np.intersect1d(tr, va)) == 0 and not np.isin(test, tr).any()


def test_preprocessing_never_sees_validation_rows(churn_frame):
    """The fold's scaler statistics equal those of its training rows alone."""
    table = load_tabular(churn_frame, "churned")
    train, _ = split_train_test(table, 0.2, seed=0)
    for tr, va in make_folds(table, train, cv=3, val_size=0.2, seed=0):
        encoded = encode_split(table, tr, va)
        scaler = encoded.preprocessor.named_transformers_["numeric"].named_steps["scale"]
        imputer = encoded.preprocessor.named_transformers_["numeric"].named_steps["impute"]
        rows = table.features.iloc[tr]
        assert np.allclose(imputer.statistics_[0], rows["tenure"].median())
        filled = rows["tenure"].fillna(rows["tenure"].median())
        q25, q75 = np.quantile(filled, [0.25, 0.75])  # robust scaling: median and quartiles
        assert np.allclose(scaler.center_[0], filled.median()) and np.allclose(scaler.factor_[0], 1 / (q75 - q25))
        # and validation rows were transformed with those statistics, not their own
        val_rows = table.features.iloc[va]["charges"].to_numpy()
        scaled = (val_rows - scaler.center_[1]) * scaler.factor_[1]
        expected = scaled / np.sqrt(1 + (scaled / 3) ** 2)  # then smoothly clipped
        assert np.allclose(encoded.X_eval[:, 1], expected, atol=1e-4)


def test_schema_checks_new_data(churn_frame):
    schema = infer_schema(churn_frame.drop(columns="churned"))
    assert [c.kind for c in schema.columns] == ["numeric", "numeric", "categorical"]
    with pytest.raises(DataError, match="lacks column.*plan"):
        conform(churn_frame.drop(columns=["plan"]), schema)
    bad = churn_frame.copy()
    bad["charges"] = bad["charges"].astype(object)
    bad.loc[3, "charges"] = "lots"
    with pytest.raises(DataError, match="column 'charges' must be numeric; found value 'lots'"):
        conform(bad, schema)


def test_datetime_columns_become_numbers():
    frame = pd.read_csv(TEST_DATA / "taxis.csv")  # its first 200 trips
    schema = infer_schema(frame.drop(columns="payment"))
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds["pickup"] == "datetime" and kinds["pickup_zone"] == "categorical"
    conformed = conform(frame, schema)
    assert conformed["pickup__hour"].between(0, 23).all()


def test_one_row_per_class_is_refused():
    frame = pd.DataFrame({"x": range(10), "y": ["a"] * 9 + ["b"]})
    with pytest.raises(DataError, match="class 'b' of target 'y' has 1 row"):
        split_train_test(load_tabular(frame, "y"), 0.2, 0)


def _numbers_frame(**columns) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40), "y": [0, 1] * 20})
    for name, values in columns.items():
        frame[name] = values
    return frame


@pytest.mark.parametrize("bad, message", [
    ({3: np.inf, 7: -np.inf, 9: np.inf}, r"column '{}' holds 3 infinite value\(s\) \(inf or -inf\)"),
    ({3: 1e308}, r"column '{}' holds 1 value\(s\) such as 1e\+308, beyond 3.4e\+38"),
])
def test_infinite_and_overflowing_feature_values_are_refused_naming_the_column(tmp_path, bad, message):
    # Both reached scikit-learn as float32 infinities ("Input X contains infinity"), exit 1.
    frame = _numbers_frame()
    for row, value in bad.items():
        frame.loc[row, "a"] = value
    frame.to_csv(tmp_path / "odd.csv", index=False)
    for data in (tmp_path / "odd.csv", frame):
        with pytest.raises(DataError, match=message.format("a")):
            load_tabular(data, "y")
    with pytest.raises(DataError, match=message.format("x0")):
        load_tabular(frame[["a", "b"]].to_numpy(), y=frame["y"].to_numpy())
    schema = load_tabular(_numbers_frame(), "y").schema
    with pytest.raises(DataError, match=message.format("a")):  # new data for a saved model
        conform(frame[["a", "b"]], schema)


def test_infinities_in_a_float32_frame_are_refused_too():
    frame = _numbers_frame()[["a", "b"]].astype(np.float32)  # conform's no-copy path
    schema = infer_schema(frame)
    frame.loc[5, "b"] = np.inf
    with pytest.raises(DataError, match=r"column 'b' holds 1 infinite value"):
        conform(frame, schema)


@pytest.mark.parametrize("bad, message", [
    ([np.inf, -np.inf], r"regression target 'y' holds 2 infinite value\(s\)"),
    ([1e300, 2.5], r"regression target 'y' holds 1 value\(s\) such as 1e\+300"),
])
def test_non_finite_regression_targets_are_refused(bad, message):
    # Trials used to fail one by one (loss nan, or an overflowing std) after the study began.
    target = np.random.default_rng(1).normal(size=40)
    target[[2, 5]] = bad
    for task in ("auto", "regression"):
        with pytest.raises(DataError, match=message):
            load_tabular(_numbers_frame(y=target), "y", task=task)


def test_a_target_without_values_and_a_header_only_file_are_refused(tmp_path):
    with pytest.raises(DataError, match="target column 'y' has no values"):
        load_tabular(_numbers_frame(y=np.nan), "y")
    _numbers_frame().iloc[:0].to_csv(tmp_path / "header.csv", index=False)
    with pytest.raises(DataError, match="'.*header.csv' has no rows"):
        load_tabular(tmp_path / "header.csv", "y")


def test_a_categorical_column_with_one_value_is_kept_as_a_constant_input():
    # Accepted on purpose: it tells the network nothing and harms nothing (as a constant
    # numeric column), and new data with another value maps to no known category.
    table = load_tabular(_numbers_frame(c="same"), "y")
    assert table.schema.categorical == ["c"]
    split = encode_split(table, np.arange(30), np.arange(30, 40))
    assert np.isfinite(split.X_train).all() and split.n_features == 3


def test_encoding_rows_in_order_leaves_the_table_as_it_was():
    from nntune.data import encode_split, load_tabular, transform

    table = load_tabular(dataset="diabetes")
    before = table.features.copy()
    split = encode_split(table, np.arange(len(table.y)), None)  # pandas may see these rows as a slice: a view
    assert table.features.equals(before)  # the in-place imputer and scaler once scaled it here
    np.testing.assert_array_equal(transform(split.preprocessor, table.features), split.X_train)
    assert table.features.equals(before)


def test_a_conformed_frame_conforms_to_itself():
    frame = pd.read_csv(TEST_DATA / "taxis.csv")
    schema = infer_schema(frame.drop(columns="payment"))
    conformed = conform(frame, schema)  # each date column as its numeric parts
    pd.testing.assert_frame_equal(conform(conformed, schema), conformed)
