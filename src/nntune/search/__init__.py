"""Search: the only package that imports optuna. Spaces, strategies, pruners, objective, study."""

from ._auto import AutoPruner, AutoSampler, starting_points
from ._blackbox import Ask, Budget, OptimizeResult, Study, create_study, optimize
from ._cv_pruning import CrossValidationPruner
from ._hp import HyperParameters
from ._kept import KeptTrial, KeptTrials
from ._objective import ModelSource, Objective, fold_synonyms, make_module, split_meta
from ._objectives import COSTS, Objectives, make_objectives, pick_trial
from ._pruners import PRUNERS, make_pruner
from ._run import TrialCallback, run_trials
from ._space import Space, grid_space, parse_space, resolve_space, suggest
from ._strategies import STRATEGIES, make_sampler
from ._study import (
    FINISHED,
    absolute_storage,
    best_first,
    best_trial,
    count_states,
    counts_toward_budget,
    fail_dead_trials,
    finished_trials,
    get_storage,
    is_journal,
    open_study,
    pareto_front,
    storage_url,
    study_exists,
    trial_records,
    worker_identity,
)
from ._warm import load_source, warm_start_points

__all__ = [
    "Ask", "AutoPruner", "AutoSampler", "Budget", "OptimizeResult", "Study", "create_study", "optimize",
    "starting_points", "load_source", "warm_start_points",
    "COSTS", "FINISHED", "PRUNERS", "STRATEGIES", "CrossValidationPruner", "HyperParameters", "ModelSource",
    "KeptTrial", "KeptTrials", "Objective",
    "Objectives", "Space", "TrialCallback", "absolute_storage", "best_first", "best_trial", "count_states",
    "counts_toward_budget", "fold_synonyms", "split_meta", "fail_dead_trials", "finished_trials", "get_storage",
    "grid_space",
    "is_journal", "make_module", "make_objectives", "make_pruner", "make_sampler", "open_study",
    "pareto_front", "parse_space", "pick_trial", "resolve_space", "run_trials", "storage_url",
    "study_exists", "suggest", "trial_records", "worker_identity",
]
