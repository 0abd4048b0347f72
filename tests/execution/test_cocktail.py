"""`search.cocktail`: an on/off switch per regulariser, its strength searched only while it is on."""

from __future__ import annotations

import numpy as np
import optuna

import nntune
from nntune.config import build_config
from nntune.execution._plan import space_for
from nntune.training import COCKTAIL

SWITCHED = {switch: strength for strength, (switch, _) in COCKTAIL.items() if switch}
MODEL_SIDE = {"dropout", "norm", "residual"}


def cocktail(**search):
    return build_config({"search": {"cocktail": True, **search}})


def test_the_space_has_a_switch_per_regulariser_and_conditional_strengths():
    space, fixed = space_for(cocktail(), None)
    for switch, strength in SWITCHED.items():
        assert space[switch].choices == [False, True]
        assert space[strength].when == {switch: True}
        assert strength not in fixed  # off leaves it unset: the default applies
    assert space["norm"].choices == ["none", "batch", "layer"] and space["norm"].when is None
    assert space["residual"].choices == [False, True]
    plain, _ = space_for(build_config({}), None)
    assert not any(name.startswith("use_") for name in plain) and plain["dropout"].when is None


def test_the_users_entries_win():
    space, fixed = space_for(cocktail(space={
        "dropout": {"type": "float", "low": 0.0, "high": 0.3},          # theirs, unconditional: no switch
        "l1": {"type": "float", "low": 1e-5, "high": 1e-4, "log": True, "when": {"use_l1": True}},
        "use_mixup": False,                                              # fixed off
        "norm": "layer"}), None)
    assert "use_dropout" not in space and space["dropout"].high == 0.3 and space["dropout"].when is None
    assert space["l1"].low == 1e-5 and space["use_l1"].choices == [False, True]
    assert fixed["use_mixup"] is False and "use_mixup" not in space
    assert fixed["norm"] == "layer" and "norm" not in space


def test_a_custom_network_gets_the_training_side_only():
    def build(hp):
        raise AssertionError("not built here")

    space, _ = space_for(cocktail(), build)
    assert not MODEL_SIDE & set(space) and "use_dropout" not in space
    assert {"use_weight_decay", "use_l1", "use_mixup", "use_clipping"} <= set(space)


def test_a_cocktail_run_searches_switches_and_its_model_reloads(tmp_path, churn_frame):
    result = nntune.tune(churn_frame, target="churned", trials=8, max_epochs=4, strategy="random", seed=1,
                         config={"search": {"cocktail": True}}, out=tmp_path / "run", report=False,
                         cv="none")  # one validation split: the cocktail's space is under test
    trials = result.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 8
    seen = set()
    for trial in trials:
        params = trial.params
        assert {"norm", "residual", *SWITCHED} <= set(params)
        for switch, strength in SWITCHED.items():
            assert (strength in params) == params[switch], (trial.number, switch, params)
            seen.add((switch, params[switch]))
            if params[switch]:
                spec = COCKTAIL[strength][1]
                assert spec["low"] <= params[strength] <= spec["high"]
    assert {on for _, on in seen} == {False, True}

    saved = result.model.info["params"]
    assert {k: saved[k] for k in result.best_params} == result.best_params
    reloaded = nntune.load(result.model_dir)
    features = churn_frame.drop(columns="churned")
    np.testing.assert_array_equal(reloaded.predict_proba(features), result.model.predict_proba(features))
    np.testing.assert_array_equal(reloaded.predict(features), result.model.predict(features))
