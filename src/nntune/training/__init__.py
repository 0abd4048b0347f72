"""Training: the fast fit loop, recipe (optimizers, schedules, regularisers), heads and metrics.

Never imports optuna: the search layer observes training through the per-epoch callback.
"""

from ._augment import (
    AUGMENT_DEFAULTS,
    augment_space,
    back_translate,
    load_synonyms,
    make_augment,
    synonym_ids,
)
from ._cocktail import COCKTAIL, cocktail_space
from ._curriculum import (
    CURRICULA,
    CURRICULUM_DEFAULTS,
    CURRICULUM_SPACE,
    PACINGS,
    Curriculum,
    difficulty_from_column,
    difficulty_from_loss,
    make_curriculum,
    pacing_share,
)
from ._device import available_cores, idle_cores, pick_device, set_threads
from ._heads import CLASS_WEIGHTS, LOSSES, Head, make_head
from ._metrics import METRICS, Metric, default_metric, get_metric, score_all
from ._population import Member, MemberResult, fit_population, population_key
from ._pretrain import PRETRAIN_DEFAULTS, PRETRAIN_LOSSES, PRETRAIN_SPACE, pretrain_encoder
from ._recipe import DEFAULTS, OPTIMIZERS, SCHEDULES, SPACE, Schedule, make_optimizer
from ._setup import prepare_fit
from ._trainer import FitResult, RowSchedule, TrainingDiverged, fit, predict_outputs
from ._transfer import TRANSFER_DEFAULTS, TRANSFER_SPACE, Transfer, apply_pretrained

__all__ = [
    "AUGMENT_DEFAULTS", "augment_space", "back_translate", "load_synonyms", "make_augment", "synonym_ids",
    "CLASS_WEIGHTS", "COCKTAIL", "DEFAULTS", "LOSSES", "METRICS", "OPTIMIZERS", "SCHEDULES", "SPACE",
    "FitResult", "Head", "Metric", "RowSchedule", "Schedule", "TrainingDiverged", "available_cores",
    "cocktail_space", "default_metric", "fit", "idle_cores", "get_metric", "make_head", "make_optimizer", "pick_device",
    "predict_outputs", "prepare_fit", "score_all", "set_threads",
    "Member", "MemberResult", "fit_population", "population_key",
    "PRETRAIN_DEFAULTS", "PRETRAIN_LOSSES", "PRETRAIN_SPACE", "pretrain_encoder",
    "CURRICULA", "CURRICULUM_DEFAULTS", "CURRICULUM_SPACE", "PACINGS", "Curriculum", "difficulty_from_column",
    "difficulty_from_loss", "make_curriculum", "pacing_share",
    "TRANSFER_DEFAULTS", "TRANSFER_SPACE", "Transfer", "apply_pretrained",
]
