"""Execution: how trials run (in this process, in worker processes, as Ray tasks), the time
budget, threads and devices."""

from ..training import available_cores, pick_device, set_threads
from ._budget import Budget
from ._depth import AFTER_DEPTH_STRATEGY, DEPTH, DepthSearch, depth_study
from ._final import FINALS, FinalModel, deliver, final_epochs, final_mode, final_seconds, train_final
from ._plan import (
    BuildModel,
    Plan,
    plan_of_study,
    prepare,
    search,
    space_for,
)
from ._ray import require_ray, run_ray
from ._workers import WorkerJob, check_picklable, publish_run, run_local, run_worker, watch, worker_threads

__all__ = [
    "Budget", "BuildModel", "FinalModel", "Plan", "WorkerJob", "available_cores", "check_picklable", "final_epochs",
    "FINALS", "deliver", "final_mode", "final_seconds", "pick_device", "plan_of_study", "prepare", "publish_run",
    "require_ray",
    "run_local", "run_ray", "run_worker", "search", "set_threads", "space_for", "train_final", "watch",
    "worker_threads", "AFTER_DEPTH_STRATEGY", "DEPTH", "DepthSearch", "depth_study",
]
