"""The exception family nntune raises.

`NntuneError` is what users catch. The split follows KerasTuner: a `TrialFailed` ends one
trial and the search goes on; everything else derived from `NntuneError` is fatal and is
reported by the CLI as one line with exit code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class NntuneError(Exception):
    """Base class of every error nntune raises on purpose."""


class ConfigError(NntuneError, ValueError):
    """A configuration value, CLI option or argument is not acceptable."""


class DataError(NntuneError, ValueError):
    """The data cannot be read or does not fit the task."""


class StudyExistsError(NntuneError):
    """A study of that name exists and `resume` was not asked for."""


class ModelDirError(NntuneError):
    """A path given as a model directory is not one nntune wrote."""


class TrialFailed(NntuneError):
    """One trial cannot produce a score (diverged, out of memory, bad combination).

    The search records the reason on the trial and keeps going.
    """


def did_you_mean(value: str, accepted: Iterable[str]) -> str:
    """Return ` (did you mean 'x'?)` when `value` is close to one accepted name, else ''."""
    close = difflib.get_close_matches(str(value), [str(a) for a in accepted], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_choice(name: str, value: str, accepted: Iterable[str]) -> str:
    """Validate a named option against its accepted values; the one error shape for all of them."""
    accepted = list(accepted)
    if value not in accepted:
        raise ConfigError(
            f"{name} must be one of {', '.join(map(str, accepted))}; got '{value}'"
            + did_you_mean(value, accepted)
        )
    return value
