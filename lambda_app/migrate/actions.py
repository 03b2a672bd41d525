"""What a migration run may be asked to do: the actions and their rules, checked once.

A `MigrationRequest` is valid by construction, whoever builds it: the Lambda handler
(from the event), the CLI and the release command (from their arguments).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

Action = Literal["upgrade", "downgrade", "current", "history", "check"]
ACTIONS: tuple[Action, ...] = get_args(Action)
DEFAULT_ACTION: Action = "upgrade"
# These change the schema, so they hold the migration lock while they run.
MUTATING_ACTIONS: frozenset[Action] = frozenset({"upgrade", "downgrade"})

# Lambda's hard limit on any invocation. No run outlives its invocation, so no wait needs
# to be longer than one; the run's deadline (`deadline`) cuts every wait shorter still.
LAMBDA_MAX_RUN_SECONDS = 900
MAX_LOCK_TIMEOUT_SECONDS = float(LAMBDA_MAX_RUN_SECONDS)

# Alembic's steps counted from the database's current revision: `-1`, `+2`, `branch@-1`
# (its own pattern, less the anchor: `head-1` or `0004+1` name a fixed revision). Such a
# target means something else once it has run: a retried or doubled invocation (a client
# retrying a timed-out call, a second deploy) would undo, or apply, the step twice.
_COUNTED_FROM_CURRENT = re.compile(r"(?:.+?@)?[+-]\d+")


class InvalidMigrationRequest(ValueError):
    pass


@dataclass(frozen=True)
class MigrationRequest:
    action: Action = DEFAULT_ACTION
    # upgrade: default head. downgrade: required, as a default would be one forgotten
    # argument away from undoing revisions nobody meant to undo.
    revision: str | None = None
    # How long to wait for another run's lock. None: as long as the run's deadline allows
    # (the other run may rightly take nearly all of its own). Always cut at the deadline.
    lock_timeout_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise InvalidMigrationRequest(
                f"unknown action {self.action!r}; expected one of {', '.join(ACTIONS)}"
            )
        if self.revision is not None and not isinstance(self.revision, str):
            raise InvalidMigrationRequest("revision must be a string")
        if self.action == "downgrade" and not self.revision:
            raise InvalidMigrationRequest(
                "downgrade needs an explicit revision (a revision id, or 'base')"
            )
        if self.mutates and self.revision and _COUNTED_FROM_CURRENT.match(self.revision):
            raise InvalidMigrationRequest(
                f"revision {self.revision!r} counts from the current revision, so a retried "
                "run would apply it again: name the revision to go to (a revision id, "
                "'base', 'head', or one counted from a named one such as 'head-1'; "
                "'current' and 'history' list them)"
            )
        timeout = self.lock_timeout_seconds
        if timeout is not None and (
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
            lock_timeout_seconds=event.get("lock_timeout_seconds"),
        )

    def to_event(self) -> dict[str, Any]:
        """The event `from_event` reads back as this request (defaults left out)."""
        event: dict[str, Any] = {"action": self.action}
        if self.revision is not None:
            event["revision"] = self.revision
        if self.lock_timeout_seconds is not None:
            event["lock_timeout_seconds"] = self.lock_timeout_seconds
        return event
