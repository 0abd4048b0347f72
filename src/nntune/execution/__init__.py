"""Execution: how trials run (in process for now), the time budget, threads and devices."""

from ..training import available_cores, pick_device, set_threads
from ._budget import Budget

__all__ = ["Budget", "available_cores", "pick_device", "set_threads"]
