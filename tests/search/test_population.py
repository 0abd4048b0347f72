"""Trials in populations: each member an ordinary trial of the study, and the model still learns."""

from __future__ import annotations

import optuna
import pytest

import nntune

from .._references import assert_run_learned


def _study(run_dir) -> optuna.Study:
    storage = f"sqlite:///{run_dir / 'study.db'}"
    (name,) = optuna.get_all_study_names(storage)
    return optuna.load_study(study_name=name, storage=storage)


def test_members_of_a_population_are_ordinary_trials(tmp_path):
    # 3 starting recipes alone, then populations of 4 (the last one smaller: the budget's rest);
    # networks with numerical embeddings or batch norm, which train alone, are left out of the space.
    result = nntune.tune(dataset="breast_cancer", trials=11, population=4, cv=3, max_epochs=12, seed=0,
                         space={"embedding": "none", "norm": "none"}, report=False, out=tmp_path / "run")
    assert sum(result.n_trials.values()) == 11 and result.n_trials.get("fail", 0) == 0
    trials = _study(tmp_path / "run").get_trials(deepcopy=False)
    populations: dict[int, list] = {}
    for trial in trials:
        if trial.user_attrs.get("population"):
            populations.setdefault(trial.user_attrs["population"]["first"], []).append(trial)
    assert len(populations) >= 2 and max(map(len, populations.values())) == 4
    for members in populations.values():
        shape = {k: members[0].params[k] for k in ("n_layers", "optimizer", "batch_size", "schedule")}
        assert all({k: t.params[k] for k in shape} == shape for t in members)  # one shape
        assert len({t.params["lr"] for t in members}) == len(members)  # the sampler's own values each
        for trial in members:  # each its own curve, fold scores and state
            assert trial.intermediate_values and trial.user_attrs["curves"]["val_score"]
            assert trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
            if trial.state == optuna.trial.TrialState.COMPLETE:
                assert len(trial.user_attrs["fold_scores"]) == 3
    assert_run_learned(result.test_scores["accuracy"], tmp_path / "run")


def test_population_members_join_the_delivered_ensemble_like_any_trial(tmp_path, monkeypatch):
    """Members are ensemble candidates as trials trained alone are, and their fold models are
    delivered as the population trained them, not trained again."""
    from nntune.execution import _final

    considered, refits = [], []
    real_runners_up, real_fit = _final.runners_up, _final.fit
    monkeypatch.setattr(_final, "runners_up", lambda *a: considered.extend(real_runners_up(*a)) or considered)
    monkeypatch.setattr(_final, "fit", lambda *a, **k: refits.append(k) or real_fit(*a, **k))
    result = nntune.tune(dataset="breast_cancer", trials=11, population=4, cv=3, max_epochs=10, seed=0,
                         space={"embedding": "none", "norm": "none"}, config={"training": {"ensemble": 8}},
                         report=False, out=tmp_path / "run")
    assert result.model.info["final"] == "folds" and not refits
    assert any(t.user_attrs.get("population") for t in considered)
    chosen = set(result.ensemble["trials"])
    assert chosen and chosen <= {t.number for t in result.study.trials if t.state.name == "COMPLETE"}
    assert_run_learned(result.test_scores["accuracy"], tmp_path / "run")


def test_population_off_trains_every_trial_alone(tmp_path):
    nntune.tune(dataset="iris", trials=6, population="off", cv="none", max_epochs=5, seed=0, report=False,
                out=tmp_path / "run")
    assert not any(t.user_attrs.get("population") for t in _study(tmp_path / "run").get_trials(deepcopy=False))


@pytest.mark.parametrize("value", ["many", "0", "-3"])
def test_a_population_that_is_not_a_size_is_refused_in_one_line(cli, value):
    code, out, err = cli("tune", "--dataset", "iris", "--population", value, "--trials", "1")
    assert code == 2
    assert "population" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_population_that_fails_fails_its_trials_and_the_study_goes_on(tmp_path, monkeypatch):
    import nntune.search._population as population

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(population, "fit_population", broken)
    result = nntune.tune(dataset="iris", trials=8, population=4, cv="none", max_epochs=5, seed=0,
                         space={"embedding": "none", "norm": "none"}, report=False, out=tmp_path / "run")
    trials = _study(tmp_path / "run").get_trials(deepcopy=False)
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed and all("out of memory" in t.user_attrs["fail_reason"] for t in failed)
    assert result.n_trials.get("complete", 0) >= 3  # the trials that trained alone
    assert sum(result.n_trials.values()) == 8


def test_members_after_the_first_are_drawn_by_tpe_in_the_gp_phase():
    # The GP's acquisition search costs 0.3-0.8 s per ask; a population's members are asked in
    # one burst, so the auto sampler draws them with its TPE (their shape fixed as the first's).
    from nntune.search._auto import AutoSampler
    from nntune.search._population import _ask_member

    def suggest(trial):
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        trial.suggest_int("units", 16, 256, log=True)

    study = optuna.create_study(sampler=AutoSampler(seed=0, n_startup_trials=4), direction="maximize")
    for i in range(6):
        trial = study.ask()
        suggest(trial)
        study.tell(trial, i / 10)
    first = study.ask()
    suggest(first)
    member = _ask_member(study, {"units": first.params["units"]}, first.number)
    suggest(member)
    phases = study.sampler._phase_of
    assert phases[first.number] == "gp" and phases[member.number] == "tpe"
    assert member.params["units"] == first.params["units"] and member.params["lr"] != first.params["lr"]
    assert study.trials[member.number].state == optuna.trial.TrialState.RUNNING  # nobody else can take it


def test_auto_trains_populations_only_where_one_step_is_small_work():
    # Each case one of the measured points (16 members against the sequential trainer, one
    # thread; docs/population.md): populations pay below AUTO_MAX_STEP_WORK and not above.
    from nntune.search._population import AUTO_MAX_STEP_WORK, step_work

    plain = {"n_layers": 2, "units": 64, "batch_size": 32}
    assert step_work(plain, 14) <= AUTO_MAX_STEP_WORK  # 4.9x
    assert step_work({**plain, "units": 256, "batch_size": 512}, 14) > AUTO_MAX_STEP_WORK  # 0.9x
    lite = {"n_layers": 2, "units": 16, "embedding": "plr_lite"}
    assert step_work({**lite, "batch_size": 64}, 14, numeric=10) <= AUTO_MAX_STEP_WORK  # 2.7x
    assert step_work({**lite, "batch_size": 512}, 14, numeric=10) > AUTO_MAX_STEP_WORK  # 0.9x
    batch_norm = {"n_layers": 2, "units": 64, "norm": "batch"}
    assert step_work({**batch_norm, "batch_size": 32}, 14) <= AUTO_MAX_STEP_WORK  # 3.2x
    assert step_work({**batch_norm, "units": 128, "batch_size": 128}, 14) > AUTO_MAX_STEP_WORK  # 0.9x


def test_auto_populations_take_no_more_members_than_lone_trials_fit_in_the_time_left():
    import datetime
    import time

    from nntune.search._population import Batches

    study = optuna.create_study()
    start = datetime.datetime(2026, 1, 1)
    for number, (seconds, attrs) in enumerate([(4.0, {}), (5.0, {}), (6.0, {}),
                                               (0.5, {"population": {"first": 3, "size": 16}})]):
        study.add_trial(optuna.trial.FrozenTrial(
            number=number, trial_id=number, state=optuna.trial.TrialState.COMPLETE, value=0.5, values=None,
            datetime_start=start, datetime_complete=start + datetime.timedelta(seconds=seconds), params={},
            distributions={}, user_attrs=attrs, system_attrs={}, intermediate_values={}))
    batches = Batches.__new__(Batches)
    batches.size = 16
    batches.stop_at = lambda: time.monotonic() + 31.0
    assert batches.fits_in_time(study) == 6  # the lone trials' median: 5 s
    batches.stop_at = lambda: None  # no time limit: the full population
    assert batches.fits_in_time(study) == 16
