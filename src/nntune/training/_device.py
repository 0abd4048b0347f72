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


def set_threads(threads: int | None, workers: int = 1) -> int:
    """Set torch's intra-op threads: given, or the available cores shared among `workers`.

    Oversubscribed cores make small-network training many times slower, so the default never
    gives the workers together more threads than there are cores.
    """
    if threads is None:
        threads = max(1, available_cores() // max(1, workers))
    torch.set_num_threads(threads)
    return threads
