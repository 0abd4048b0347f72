"""One searchable parameter, validated: its type, range or choices, and when it applies."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scalar = bool | int | float | str | None


class ParamSpec(BaseModel):
    """A dimension of the search space.

    `when` makes the parameter conditional: `{optimizer: sgd}` or `{optimizer: [sgd, rmsprop]}`.
    `per_layer` asks for one value per hidden layer (`units_0`, `units_1`, ...).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Scalar] | None = None
    when: dict[str, Scalar | list[Scalar]] | None = None
    per_layer: bool = False
    grid: list[Scalar] | None = Field(
        default=None, description="values the grid strategy tries (default: low, mid, high)")

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs 'low' and 'high'")
        if self.low > self.high:
            raise ValueError(f"low ({_fmt(self.low)}) must be <= high ({_fmt(self.high)})")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0; got low={_fmt(self.low)}")
        if self.log and self.step is not None:
            raise ValueError("'step' and 'log' cannot be combined")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError(f"an int parameter needs whole low/high; got {self.low}..{self.high}")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be > 0; got {self.step}")
        return self

    def matches(self, params: dict[str, Any]) -> bool:
        """Whether this parameter applies, given the values chosen so far."""
        for parent, wanted in (self.when or {}).items():
            allowed = wanted if isinstance(wanted, list) else [wanted]
            if parent not in params or params[parent] not in allowed:
                return False
        return True


def _fmt(x: float) -> str:
    return f"{x:g}"


SpaceEntry = ParamSpec | Scalar
