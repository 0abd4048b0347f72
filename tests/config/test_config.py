from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nntune.config import ParamSpec, build_config, load_config, parse_duration
from nntune.errors import ConfigError


@pytest.mark.parametrize("text, seconds", [
    (90, 90.0), ("90", 90.0), ("90s", 90.0), ("10m", 600.0), ("1h", 3600.0),
    ("1h30m", 5400.0), ("0.5m", 30.0), (" 2M ", 120.0),
])
def test_durations_people_write(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10x", "m", "", "-5", "0", "1h-", True])
def test_bad_duration_names_the_value(text):
    with pytest.raises(ConfigError, match="timeout must be"):
        parse_duration(text)


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match=r"unknown key 'search.stratgy'.*did you mean 'strategy'"):
        build_config({"search": {"stratgy": "tpe"}})
    with pytest.raises(ConfigError, match=r"unknown key 'serch'.*did you mean 'search'"):
        build_config({"serch": {}})


def test_unknown_key_inside_a_space_entry():
    with pytest.raises(ConfigError, match=r"unknown key 'search.space.lr.lg'.*did you mean 'log'"):
        build_config({"search": {"space": {"lr": {"type": "float", "low": 0.1, "high": 1, "lg": True}}}})


def test_range_errors_name_the_parameter_and_values():
    with pytest.raises(ConfigError, match=r"search.space.lr.*low \(1\) must be <= high \(0.1\)"):
        build_config({"search": {"space": {"lr": {"type": "float", "low": 1, "high": 0.1}}}})
    with pytest.raises(ConfigError, match=r"search.space.lr.*log scale needs low > 0; got low=0"):
        build_config({"search": {"space": {"lr": {"type": "float", "low": 0, "high": 0.1, "log": True}}}})


def test_malformed_yaml_says_where(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("search:\n  trials: [1, 2\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_config(path)


def test_options_override_file_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: iris}\nsearch: {trials: 60, timeout: 10m, strategy: random}\n")
    cfg = load_config(path, {"search": {"trials": 5, "strategy": None}})
    assert cfg.search.trials == 5
    assert cfg.search.strategy == "random"  # None means "not given on the command line"
    assert cfg.search.timeout == 600.0
    assert cfg.data.dataset == "iris"


def test_the_issue_example_config_validates(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("""
data:     {path: churn.csv, target: churned, task: auto, test_size: 0.2}
model:    {family: mlp}
training: {max_epochs: 100, early_stopping: {patience: 10}}
search:
  strategy: tpe
  pruner: hyperband
  trials: 60
  timeout: 10m
  cv: 5
  metric: roc_auc
  space:
    lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
    n_layers: {type: int, low: 0, high: 4}
    optimizer: {type: categorical, choices: [adam, sgd, rmsprop]}
    momentum: {type: float, low: 0.5, high: 0.99, when: {optimizer: sgd}}
storage: sqlite:///runs/churn/study.db
""")
    cfg = load_config(path)
    assert cfg.search.space["momentum"].when == {"optimizer": "sgd"}
    assert cfg.search.cv == 5 and cfg.training.early_stopping.patience == 10


# Property tests of the space parser: whatever valid range is written, it parses and keeps
# its bounds; whatever inverted range is written, it is refused with the values named.
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(a=finite, b=finite, log=st.booleans())
def test_float_specs_accept_exactly_the_valid_ranges(a, b, log):
    raw = {"type": "float", "low": a, "high": b, "log": log}
    valid = a <= b and (not log or a > 0)
    if valid:
        spec = ParamSpec.model_validate(raw)
        assert (spec.low, spec.high, spec.log) == (a, b, log)
    else:
        with pytest.raises(ValueError):
            ParamSpec.model_validate(raw)


@settings(max_examples=100, deadline=None)
@given(choices=st.lists(st.one_of(st.integers(), st.text(min_size=1, max_size=8), st.booleans()),
                        max_size=6))
def test_categorical_specs_need_choices(choices):
    raw = {"type": "categorical", "choices": choices}
    if choices:
        assert ParamSpec.model_validate(raw).choices == choices
    else:
        with pytest.raises(ValueError, match="non-empty"):
            ParamSpec.model_validate(raw)


def test_data_path_relative_to_the_config_file(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "churn.csv").write_text("a,y\n1,0\n")
    (folder / "c.yaml").write_text("data: {path: churn.csv, target: y}\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(folder / "c.yaml").data.path == str(folder / "churn.csv")
