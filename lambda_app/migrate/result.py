"""What a migration run reports: the migration event's response, and the CLI's output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lambda_app.migrate.actions import Action
from lambda_app.migrate.superuser import SuperuserResult


@dataclass
class MigrationResult:
    action: Action
    from_revision: str | None  # several heads joined by commas; None: base
    to_revision: str | None
    head: str | None  # of the scripts
    applied: list[str] = field(default_factory=list)  # in the order they ran (or were undone)
    history: list[dict[str, Any]] | None = None  # `history` only
    drift: list[str] | None = None  # `check` only
    superuser: SuperuserResult | None = None  # `upgrade` only
    duration_ms: int | None = None
    # `upgrade` only: the database is at a revision newer than these scripts know.
    ahead_of_scripts: bool = False

    @property
    def ok(self) -> bool:
        return not self.drift  # drift: the models and the migrations disagree

    @property
    def at_head(self) -> bool:
        return self.to_revision is not None and self.to_revision == self.head

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, and free of secrets: it is returned by Lambda and logged."""
        result: dict[str, Any] = {
            "ok": self.ok,
            "action": self.action,
            "from_revision": self.from_revision,
            "to_revision": self.to_revision,
            "head": self.head,
            "applied": self.applied,
        }
        if self.action == "upgrade":
            result["superuser"] = self.superuser.as_dict() if self.superuser else None
        if self.ahead_of_scripts:
            result["ahead_of_scripts"] = True
        if self.history is not None:
            result["history"] = self.history
        if self.drift is not None:
            result["drift"] = self.drift
        if self.duration_ms is not None:
            result["duration_ms"] = self.duration_ms
        return result
