"""Warm start: the best configurations of an earlier study, tried first in a new one."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from ..errors import ConfigError
from ._space import Space
from ._study import best_first

WARM_START_TRIALS = 5


def load_source(storage: str, study_name: str | None) -> optuna.Study:
    """The earlier study; with no name, the storage's only study."""
    from ._study import get_storage

    names = optuna.get_all_study_names(storage=get_storage(storage))
    if study_name is None:
        main = [n for n in names if ".depth" not in n]  # a depth search's stage studies aside
        if len(main) != 1:
            raise ConfigError(f"the warm-start storage holds {len(main)} studies ({', '.join(main) or 'none'}); "
                              "name one as STORAGE#STUDY")
        study_name = main[0]
    if study_name not in names:
        raise ConfigError(f"no study '{study_name}' in the warm-start storage; it holds: {', '.join(names) or 'none'}")
    return optuna.load_study(study_name=study_name, storage=get_storage(storage))


def warm_start_points(source: optuna.Study, space: Space, fixed: dict[str, Any], direction: str,
                      k: int = WARM_START_TRIALS) -> list[dict[str, Any]]:
    """The `k` best complete trials of `source` as points of `space`: parameters the space
    searches, with values it accepts (others are left for the sampler to choose)."""
    if [d.name.lower() for d in source.directions][:1] != [direction]:
        raise ConfigError(f"the warm-start study {source.study_name!r} {source.directions[0].name.lower()}s its "
                          f"first objective; this run {direction}s: not the same metric")
    complete = [t for t in source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.values is not None]
    complete.sort(key=best_first(direction))
    points: list[dict[str, Any]] = []
    for trial in complete:
        point = {name: value for name, value in trial.params.items() if _accepts(space, name, value)}
        point = {name: value for name, value in point.items() if _applies(space, name, {**fixed, **point})}
        if point and point not in points:
            points.append(point)
        if len(points) == k:
            break
    return points


def _accepts(space: Space, name: str, value: Any) -> bool:
    base = name.rsplit("_", 1)[0] if name not in space and name.rsplit("_", 1)[-1].isdigit() else name
    spec = space.get(base)
    if spec is None:
        return False
    if spec.type == "categorical":
        return value in spec.choices
    if not isinstance(value, int | float) or isinstance(value, bool) or not spec.low <= value <= spec.high:
        return False
    return spec.type != "int" or float(value).is_integer()  # an int parameter takes whole values only


def _applies(space: Space, name: str, values: dict[str, Any]) -> bool:
    spec = space.get(name)
    return spec is None or spec.matches(values)
