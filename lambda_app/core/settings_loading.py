"""Loading a settings model, and refusing it without showing a value.

pydantic's own `ValidationError` text repeats the input (`input_value=`): every setting
read, secrets included. `load_settings` raises `SettingsError` instead, which names each
variable and what is wrong with it. That is what reaches Lambda's init error and the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

AnySettings = TypeVar("AnySettings", bound=BaseSettings)


class Refused(ValueError):
    """A model validator's refusal of one field: pydantic's error for it has no field loc."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class SettingProblem:
    variable: str  # the environment variable, e.g. "JWT_SECRET"
    message: str


class SettingsError(ValueError):
    """Settings refused: each problem names its variable and what is wrong, never a value.

    (Not `pydantic_settings.SettingsError`, which is about reading a source.)
    """

    def __init__(self, problems: Sequence[SettingProblem]) -> None:
        self.problems = tuple(problems)
        listed = "; ".join(f"{p.variable}: {p.message}" for p in self.problems)
        super().__init__(f"invalid settings: {listed}")

    @classmethod
    def from_validation_error(cls, exc: ValidationError, *, prefix: str = "") -> SettingsError:
        """The problems of `exc`, each field named as the variable `prefix` + FIELD."""
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            field = str(error["loc"][0]) if error["loc"] else ""
            message = error["msg"]
            raised = error.get("ctx", {}).get("error")  # a validator's own ValueError
            if isinstance(raised, ValueError):
                message = str(raised)  # without pydantic's "Value error, " in front
            if isinstance(raised, Refused):
                field = raised.field
            variable = f"{prefix}{field}".upper() if field else "settings"
            problems.append(SettingProblem(variable, message))
        return cls(problems)


def load_settings(model: type[AnySettings], **values: Any) -> AnySettings:
    """`model(**values)`, read from the environment, refused with a `SettingsError`."""
    try:
        return model(**values)
    except ValidationError as exc:
        # `from None`: printed with its cause, the ValidationError would show the values.
        raise SettingsError.from_validation_error(exc) from None
