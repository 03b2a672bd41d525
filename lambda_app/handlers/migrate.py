"""The migration Lambda: the event in, `lambda_app.migrate.runner.run_migration`, the result out.

Event: {"action": "upgrade" | "downgrade" | "current" | "history" | "check",
        "revision": "...", "lock_timeout_seconds": 60}
(all optional; the default is `upgrade` to `head`, waiting for another run's lock as long
as the deadline allows; the rules: `lambda_app.migrate.actions`).

The run's deadline is the invocation's remaining time less a margin to report a failure
(`lambda_app.migrate.deadline`): past it, PostgreSQL cancels the statement, the revision
rolls back, and the failure is logged and raised, before Lambda would kill the process
and leave the statement running on the server.

It returns {"ok", "action", "from_revision", "to_revision", "head", "applied",
"duration_ms"} plus "superuser" (upgrade), "history" (history) or "drift" (check).
A failure is logged as one JSON line and raised, so Lambda reports a FunctionError
and `release` exits non-zero.

This function connects to the database instance directly, not through RDS Proxy:
the advisory lock is session-level, which pins a proxy session for the whole run and
defeats the proxy (and a proxy could hand the lock's session to someone else after a
client disconnect). Its DB_HOST is the instance endpoint.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from alembic.config import Config

from lambda_app.core import metrics
from lambda_app.core.logging import configure_logging
from lambda_app.migrate.actions import MigrationRequest
from lambda_app.migrate.deadline import DEFAULT_RUN_SECONDS, Deadline
from lambda_app.migrate.errors import own_frames, safe_error_message
from lambda_app.migrate.runner import alembic_config, run_migration
from lambda_app.migrate.settings import get_migration_settings
from lambda_app.migrate.superuser import CONFIGURED_SUPERUSER

logger = logging.getLogger("lambda_app.migrate")


class MigrationFailed(RuntimeError):
    """Raised from the handler so Lambda reports a FunctionError; the message is log-safe."""


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point (`lambda_app.handlers.migrate.handler`): the shipped scripts."""
    deadline = Deadline.for_invocation(context)  # first: the clock runs from the invocation
    try:
        level = get_migration_settings().log_level
    except Exception:  # invalid settings: reported (log-safely) by run_migration_event
        level = "INFO"
    configure_logging(level)
    request_id = getattr(context, "aws_request_id", None)
    return run_migration_event(
        event, config=alembic_config(), request_id=request_id, deadline=deadline
    )


def run_migration_event(
    event: Any,
    *,
    config: Config,
    request_id: str | None = None,
    deadline: Deadline | None = None,
) -> dict[str, Any]:
    """Run one migration event on `config`'s scripts before `deadline` (default: a run's
    budget on Lambda); raises `MigrationFailed` (logged first) on any failure."""
    started = time.perf_counter()
    deadline = deadline or Deadline.after(DEFAULT_RUN_SECONDS)
    request: MigrationRequest | None = None
    try:
        request = MigrationRequest.from_event(event)
        result = asyncio.run(
            run_migration(request, config=config, superuser=CONFIGURED_SUPERUSER, deadline=deadline)
        )
    except Exception as exc:
        message = safe_error_message(exc)
        logger.error(
            "migration failed",
            extra={
                "fields": {
                    "request_id": request_id,
                    # What was asked for, even when it was not a valid request.
                    "action": request.action if request else _asked_action(event),
                    "error_type": type(exc).__name__,
                    "error": message,
                    "traceback": own_frames(exc, config),
                    "duration_ms": round((time.perf_counter() - started) * 1000),
                    "budget_ms": round(deadline.budget_seconds * 1000),
                }
            },
        )
        raise MigrationFailed(message) from exc
    response = result.as_dict()
    logger.info("migration finished", extra={"fields": {"request_id": request_id, **response}})
    metrics.record_migration(
        # The settings the run just used (cached), so the stage is the one it migrated.
        stage=get_migration_settings().environment,
        action=result.action,
        applied=len(result.applied),
        duration_ms=(time.perf_counter() - started) * 1000,
    )
    return response


def _asked_action(event: Any) -> Any:
    return event.get("action") if isinstance(event, dict) else None
