"""What a migration run may be asked to do: the actions and their rules, checked once.

A `MigrationRequest` is valid by construction, whoever builds it: the Lambda handler
(from the event), the CLI and the release command (from their arguments).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

Action = Literal["upgrade", "downgrade", "current", "history", "check"]
ACTIONS: tuple[Action, ...] = get_args(Action)
DEFAULT_ACTION: Action = "upgrade"
# These change the schema, so they hold the migration lock while they run.
MUTATING_ACTIONS: frozenset[Action] = frozenset({"upgrade", "downgrade"})

# No run outlives its Lambda invocation, so no wait needs to be longer than one.
LAMBDA_MAX_RUN_SECONDS = 900
DEFAULT_LOCK_TIMEOUT_SECONDS = 300.0
MAX_LOCK_TIMEOUT_SECONDS = float(LAMBDA_MAX_RUN_SECONDS)


class InvalidMigrationRequest(ValueError):
    pass


@dataclass(frozen=True)
class MigrationRequest:
    action: Action = DEFAULT_ACTION
    # upgrade: default head. downgrade: required, as a default would be one forgotten
    # argument away from undoing revisions nobody meant to undo.
    revision: str | None = None
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise InvalidMigrationRequest(
                f"unknown action {self.action!r}; expected one of {', '.join(ACTIONS)}"
            )
        if self.revision is not None and not isinstance(self.revision, str):
            raise InvalidMigrationRequest("revision must be a string")
        if self.action == "downgrade" and not self.revision:
            raise InvalidMigrationRequest(
                "downgrade needs an explicit revision (e.g. 'base', '-1' or a revision id)"
            )
        timeout = self.lock_timeout_seconds
        if (
            not isinstance(timeout, int | float)
            or isinstance(timeout, bool)
            or not 0 < timeout <= MAX_LOCK_TIMEOUT_SECONDS
        ):
            raise InvalidMigrationRequest(
                f"lock_timeout_seconds must be a number in (0, {MAX_LOCK_TIMEOUT_SECONDS:g}]"
            )

    @property
    def mutates(self) -> bool:
        return self.action in MUTATING_ACTIONS

    @property
    def target(self) -> str:
        """Where an upgrade or a downgrade goes (a downgrade always names it)."""
        return self.revision or "head"

    @classmethod
    def from_event(cls, event: Any) -> MigrationRequest:
        """The request in a migration event; every field is optional (`{}` upgrades)."""
        event = event or {}
        if not isinstance(event, dict):
            raise InvalidMigrationRequest("the event must be a JSON object")
        return cls(
            action=event.get("action") or DEFAULT_ACTION,
            revision=event.get("revision"),
            lock_timeout_seconds=event.get("lock_timeout_seconds", DEFAULT_LOCK_TIMEOUT_SECONDS),
        )

    def to_event(self) -> dict[str, Any]:
        """The event `from_event` reads back as this request (defaults left out)."""
        event: dict[str, Any] = {"action": self.action}
        if self.revision is not None:
            event["revision"] = self.revision
        if self.lock_timeout_seconds != DEFAULT_LOCK_TIMEOUT_SECONDS:
            event["lock_timeout_seconds"] = self.lock_timeout_seconds
        return event
