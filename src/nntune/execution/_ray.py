"""The Ray backend: the study's workers run as Ray tasks on a cluster.

Ray places the tasks (each reserves `cpus_per_trial` CPUs and `gpus_per_trial` GPUs, so a
cluster runs as many at once as its resources allow); the study itself stays in the shared
storage, so the driver can stop and resume, and a task lost with its node only costs its
running trial, which the other workers fail and queue again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import optuna

from ..errors import ConfigError, NntuneError
from ..search import TrialCallback, is_journal
from ._workers import WorkerJob, check_picklable, run_worker, watch


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray backend needs Ray: pip install 'nntune[ray]'") from None
    return ray


def _ray_worker(job: WorkerJob) -> int:
    return run_worker(job)


def run_ray(job: WorkerJob, study: optuna.Study, address: str | None, cpus_per_trial: float,
            gpus_per_trial: float, callbacks: Sequence[TrialCallback] = ()) -> list[str]:
    """Run the study's workers as Ray tasks; without `address`, on a local Ray instance
    started for this run and stopped after it. Returns the first line of each task that
    failed as a whole (a trial's own failure is recorded on the trial instead)."""
    ray = require_ray()
    check_picklable(job)
    if address not in (None, "local") and (is_journal(job.storage) or job.storage.startswith("sqlite")):
        # A file is only shared by the nodes of one machine; say so before tasks fail remotely.
        optuna.logging.get_logger("nntune").warning(
            "storage %s is a local file: on a multi-node Ray cluster use --storage postgresql://...",
            job.storage)  # a file path: no password in it
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        slots = _slots(nodes, cpus_per_trial, gpus_per_trial)
        n_trials = study.user_attrs.get("n_trials")
        if n_trials:
            slots = min(slots, int(n_trials))
        task = ray.remote(_ray_worker).options(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial,
                                               max_retries=0)
        threads = job.threads or max(1, math.floor(cpus_per_trial))
        refs = [task.remote(replace(job, index=i + 1, threads=threads)) for i in range(slots)]
        pending = list(refs)

        def running() -> bool:
            nonlocal pending
            if pending:
                _, pending = ray.wait(pending, num_returns=len(pending), timeout=0)
            return bool(pending)

        watch(study, running, callbacks)
        errors = []
        for ref in refs:
            try:
                ray.get(ref)
            except Exception as exc:  # a task's failure: other tasks may have finished the study
                errors.append(str(getattr(exc, "cause", None) or exc))
        if errors and not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            raise NntuneError(f"the Ray workers failed: {errors[0].splitlines()[0]}")
        return [e.splitlines()[0] if e else "unknown error" for e in errors]
    finally:
        if started_here:
            ray.shutdown()


def _slots(nodes: list[dict[str, float]], cpus: float, gpus: float) -> int:
    """How many trials the cluster runs at once with these per-trial reservations. A task
    runs on one node, so each node is counted alone: two 2-CPU nodes hold no 4-CPU trial."""
    slots = 0
    for resources in nodes:
        fit = math.floor(resources.get("CPU", 0) / cpus)
        if gpus > 0:
            fit = min(fit, math.floor(resources.get("GPU", 0) / gpus))
        slots += fit
    if slots < 1:
        largest = max(nodes, key=lambda r: r.get("CPU", 0), default={})
        raise ConfigError(
            f"no node of the Ray cluster fits a trial of cpus_per_trial={cpus:g}, gpus_per_trial={gpus:g}; "
            f"the largest has {largest.get('CPU', 0):g} CPUs and {largest.get('GPU', 0):g} GPUs")
    return slots
