"""Study storage: Optuna's RDB storage (SQLite in the run directory unless a URL is given)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import optuna

from ..errors import ConfigError, StudyExistsError

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
            optuna.trial.TrialState.FAIL)


def storage_url(storage: str | None, run_dir: Path) -> str:
    """The storage URL for a run: the given SQLAlchemy URL, or `sqlite:///<run_dir>/study.db`."""
    if storage:
        if "://" not in storage:
            raise ConfigError(
                f"storage must be a SQLAlchemy URL such as sqlite:///study.db or "
                f"postgresql://host/db; got '{storage}'")
        return storage
    return f"sqlite:///{(run_dir / 'study.db').as_posix()}"


def get_storage(url: str) -> optuna.storages.BaseStorage:
    try:
        return optuna.storages.RDBStorage(url, heartbeat_interval=None)
    except Exception as exc:
        raise ConfigError(f"storage '{url}' cannot be opened: {str(exc).splitlines()[0]}") from None


def study_exists(storage: optuna.storages.BaseStorage, name: str) -> bool:
    return any(s.study_name == name for s in storage.get_all_studies())


def open_study(
    name: str,
    storage: optuna.storages.BaseStorage,
    direction: str,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    resume: bool,
) -> tuple[optuna.Study, bool]:
    """Create the study, or with `resume` continue it (creating it when absent).

    Returns (study, created). Without `resume`, an existing study is an error, so that a
    repeated command never mixes two runs silently.
    """
    exists = study_exists(storage, name)
    if exists and not resume:
        raise StudyExistsError(
            f"study '{name}' already exists in this storage; pass --resume to continue it, "
            f"or --study NEW_NAME to start another")
    if exists:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        if study.direction.name.lower() != direction:
            raise ConfigError(
                f"study '{name}' was created to {study.direction.name.lower()} its metric; "
                f"this run would {direction}: keep the study's metric or use a new --study")
        return study, False
    study = optuna.create_study(study_name=name, storage=storage, direction=direction,
                                sampler=sampler, pruner=pruner)
    return study, True


def count_states(study: optuna.Study) -> dict[str, int]:
    """Trials by state name, lower case: {'complete': 12, 'pruned': 3, ...}. Queued trials
    that never started (a starting point the budget left no time for) are not counted."""
    counts = Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False)
                     if t.state != optuna.trial.TrialState.WAITING)
    return dict(sorted(counts.items()))


def finished_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def trial_records(storage: str, study_name: str) -> list[dict]:
    """The study's trials as plain dicts (number, state, value, params, user attributes)."""
    study = optuna.load_study(study_name=study_name, storage=get_storage(storage))
    return [{"number": t.number, "state": t.state.name.lower(), "value": t.value,
             "params": t.params, **t.user_attrs} for t in study.get_trials(deepcopy=False)]


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best completed trial; among trials with the same score, the lowest settled
    validation loss (the median around the best epoch, see the objective).

    Accuracy on a small validation set ties often (several trials at 1.0): the loss tells
    the more confident of them apart, where Optuna would keep the first one found.
    """
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        return None
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
    top = max(sign * t.value for t in done)
    tied = [t for t in done if sign * t.value == top]
    return min(tied, key=lambda t: (t.user_attrs.get("val_loss", float("inf")), t.number))
