"""Label smoothing: the family's own value for classifiers where the config sets none."""

from __future__ import annotations

import pytest

from nntune.config import build_config
from nntune.execution._plan import space_for


@pytest.mark.parametrize(("config", "kind", "task", "expected"), [
    ({}, "table", "binary", 0.1),                                        # mlp, RealMLP-TD's value
    ({}, "table", "multiclass", 0.1),
    ({}, "table", "regression", 0.0),                                    # nothing to smooth
    ({"training": {"label_smoothing": 0.0}}, "table", "binary", 0.0),     # the user's value wins
    ({"training": {"label_smoothing": 0.2}}, "table", "multiclass", 0.2),
    ({"model": {"family": "auto"}}, "table", "binary", 0.1),             # the table default's (mlp)
    ({"model": {"family": "cnn"}}, "signal", "multiclass", 0.0),
])
def test_classifiers_take_the_familys_label_smoothing_unless_the_config_sets_one(config, kind, task, expected):
    _, fixed = space_for(build_config(config), None, kind, task)
    assert fixed["label_smoothing"] == expected


def test_a_network_of_the_users_own_is_not_smoothed_unless_asked():
    def build(hp):  # never called: the space is all that is read
        raise AssertionError

    _, fixed = space_for(build_config({}), build, "table", "binary")
    assert fixed["label_smoothing"] == 0.0


def test_null_survives_the_round_trip_through_the_stored_config():
    # A study stores the whole config; a worker or a resume rebuilds the same fixed values.
    cfg = build_config({})
    again = build_config(cfg.model_dump(mode="json"))
    assert again.training.label_smoothing is None
    assert space_for(again, None, "table", "binary")[1]["label_smoothing"] == 0.1
