"""Training: the fast fit loop, recipe (optimizers, schedules, regularisers), heads and metrics.

Never imports optuna: the search layer observes training through the per-epoch callback.
"""

from ._cocktail import COCKTAIL, cocktail_space
from ._device import available_cores, idle_cores, pick_device, set_threads
from ._heads import CLASS_WEIGHTS, LOSSES, Head, make_head
from ._metrics import METRICS, Metric, default_metric, get_metric, score_all
from ._recipe import DEFAULTS, OPTIMIZERS, SCHEDULES, SPACE, Schedule, make_optimizer
from ._trainer import FitResult, RowSchedule, TrainingDiverged, fit, predict_outputs

__all__ = [
    "CLASS_WEIGHTS", "COCKTAIL", "DEFAULTS", "LOSSES", "METRICS", "OPTIMIZERS", "SCHEDULES", "SPACE",
    "FitResult", "Head", "Metric", "RowSchedule", "Schedule", "TrainingDiverged", "available_cores",
    "cocktail_space", "default_metric", "fit", "idle_cores", "get_metric", "make_head", "make_optimizer", "pick_device",
    "predict_outputs", "score_all", "set_threads",
]
