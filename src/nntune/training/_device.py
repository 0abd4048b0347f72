"""Pick the fastest device present and set torch's thread count deliberately."""

from __future__ import annotations

import os

import torch


def pick_device(preferred: str = "auto") -> torch.device:
    """'auto' means cuda, then Apple's mps, then cpu; any torch device string is accepted too."""
    if preferred != "auto":
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def idle_cores(sample_seconds: float = 0.2) -> int:
    """Cores of this process's affinity set that are not busy with other work right now."""
    cores = available_cores()
    try:
        import psutil

        usage = psutil.cpu_percent(interval=sample_seconds, percpu=True)
        allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(len(usage))
        busy = sum(1 for i in allowed if i < len(usage) and usage[i] > 50.0)
    except Exception:  # no per-core figures on this platform: assume the cores are free
        busy = 0
    return max(1, cores - busy)


def set_threads(threads: int | None, workers: int = 1) -> int:
    """Set torch's intra-op threads: given, or the idle cores shared among `workers`.

    A torch thread that competes for a busy core makes small-network training many times
    slower than one thread alone, so the default counts only cores that are idle now.
    """
    if threads is None:
        threads = max(1, idle_cores() // max(1, workers))
    torch.set_num_threads(threads)
    return threads

