"""Search: the only package that imports optuna. Spaces, strategies, pruners, objective, study."""

from ._hp import HyperParameters
from ._objective import ModelSource, Objective, make_module
from ._pruners import PRUNERS, make_pruner
from ._run import TrialCallback, run_trials
from ._space import Space, grid_space, parse_space, resolve_space, suggest
from ._strategies import STRATEGIES, make_sampler
from ._study import (
    FINISHED,
    absolute_storage,
    best_trial,
    count_states,
    counts_toward_budget,
    fail_dead_trials,
    finished_trials,
    get_storage,
    is_journal,
    open_study,
    storage_url,
    study_exists,
    trial_records,
    worker_identity,
)

__all__ = [
    "FINISHED", "absolute_storage", "counts_toward_budget", "fail_dead_trials", "is_journal",
    "worker_identity", "PRUNERS", "best_trial", "STRATEGIES", "HyperParameters", "ModelSource", "Objective", "Space",
    "TrialCallback", "count_states", "finished_trials", "get_storage", "grid_space",
    "make_module", "make_pruner", "make_sampler", "open_study", "parse_space", "resolve_space",
    "run_trials", "storage_url", "study_exists", "suggest", "trial_records",
]
