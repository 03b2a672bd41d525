"""The migration Lambda: runs Alembic in-process, serialized by an advisory lock.

Event: {"action": "upgrade" | "downgrade" | "current" | "history" | "check",
        "revision": "...", "lock_timeout_seconds": 300}
(all optional; the default is `upgrade` to `head`; `downgrade` needs a revision).

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
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from lambda_app.core.logging import configure_logging
from lambda_app.core.settings import SettingsError
from lambda_app.migrate.settings import MigrationSettings, get_migration_settings
from lambda_app.migrations_runner import (
    ACTIONS,
    DEFAULT_LOCK_TIMEOUT_SECONDS,
    MUTATING_ACTIONS,
    Action,
    MigrationOutcome,
    migration_lock,
    migration_settings,
    migrations_dir,
    run_alembic,
)

logger = logging.getLogger("lambda_app.migrate")

MAX_LOCK_TIMEOUT_SECONDS = 900.0  # Lambda's maximum run time
MAX_ERROR_MESSAGE_CHARS = 2000
MAX_TRACEBACK_FRAMES = 20


class InvalidMigrationEvent(ValueError):
    pass


class MigrationFailed(RuntimeError):
    """Raised from the handler so Lambda reports a FunctionError; the message is log-safe."""


@dataclass(frozen=True)
class MigrationRequest:
    action: Action
    revision: str | None
    lock_timeout_seconds: float

    @classmethod
    def from_event(cls, event: Any) -> MigrationRequest:
        event = event or {}
        if not isinstance(event, dict):
            raise InvalidMigrationEvent("the event must be a JSON object")
        action = event.get("action") or "upgrade"
        if action not in ACTIONS:
            raise InvalidMigrationEvent(
                f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}"
            )
        revision = event.get("revision")
        if revision is not None and not isinstance(revision, str):
            raise InvalidMigrationEvent("revision must be a string")
        if action == "downgrade" and not revision:
            raise InvalidMigrationEvent("downgrade needs an explicit revision (e.g. 'base')")
        timeout = event.get("lock_timeout_seconds", DEFAULT_LOCK_TIMEOUT_SECONDS)
        if (
            not isinstance(timeout, int | float)
            or isinstance(timeout, bool)
            or not 0 < timeout <= MAX_LOCK_TIMEOUT_SECONDS
        ):
            raise InvalidMigrationEvent(
                f"lock_timeout_seconds must be a number in (0, {MAX_LOCK_TIMEOUT_SECONDS:g}]"
            )
        return cls(cast(Action, action), revision, float(timeout))


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point (`lambda_app.handlers.migrate.handler`)."""
    try:
        level = get_migration_settings().log_level
    except Exception:  # invalid settings: reported (log-safely) by run_migration_event
        level = "INFO"
    configure_logging(level)
    return run_migration_event(event, request_id=getattr(context, "aws_request_id", None))


def run_migration_event(event: Any, *, request_id: str | None = None) -> dict[str, Any]:
    """Run one migration event; raises `MigrationFailed` (logged first) on any failure."""
    started = time.perf_counter()
    action = event.get("action") if isinstance(event, dict) else None
    try:
        request = MigrationRequest.from_event(event)
        result = asyncio.run(_run(request))
    except Exception as exc:
        message = safe_error_message(exc)
        logger.error(
            "migration failed",
            extra={
                "fields": {
                    "request_id": request_id,
                    "action": action or "upgrade",
                    "error_type": type(exc).__name__,
                    "error": message,
                    "traceback": own_frames(exc),
                    "duration_ms": _elapsed_ms(started),
                }
            },
        )
        raise MigrationFailed(message) from exc
    result["duration_ms"] = _elapsed_ms(started)
    logger.info("migration finished", extra={"fields": {"request_id": request_id, **result}})
    return result


async def _run(request: MigrationRequest) -> dict[str, Any]:
    from lambda_app.db.engine import build_engine

    settings = get_migration_settings()
    # A fresh engine per invocation, disposed at the end: the function runs rarely, so a
    # warm container must not keep a connection open to the instance between releases.
    engine = build_engine(migration_settings(settings))
    try:
        if request.action not in MUTATING_ACTIONS:
            outcome = await run_alembic(engine, request.action, request.revision)
            return _result(outcome)
        async with migration_lock(engine, timeout_seconds=request.lock_timeout_seconds):
            outcome = await run_alembic(engine, request.action, request.revision)
            result = _result(outcome)
            if request.action == "upgrade":
                # Still under the lock: two concurrent runs can't both create the user.
                result["superuser"] = await _ensure_first_superuser(engine, settings, outcome)
            return result
    finally:
        await engine.dispose()


def _result(outcome: MigrationOutcome) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ok": True,
        "action": outcome.action,
        "from_revision": outcome.from_revision,
        "to_revision": outcome.to_revision,
        "head": outcome.head,
        "applied": outcome.applied,
    }
    if outcome.history is not None:
        result["history"] = outcome.history
    if outcome.drift is not None:
        result["drift"] = outcome.drift
        result["ok"] = not outcome.drift  # the models and the migrations disagree
    return result


async def _ensure_first_superuser(
    engine: AsyncEngine, settings: MigrationSettings, outcome: MigrationOutcome
) -> dict[str, Any] | None:
    """Create the configured first superuser if missing; None when none is configured."""
    from lambda_app.migrate.superuser import ensure_superuser, superuser_spec

    spec = superuser_spec(settings, allow_local_default=False)
    if spec is None:
        return None
    if not outcome.at_head:
        # The ORM models describe the head schema; an older schema may not fit them.
        return {"username": spec.username, "created": False, "skipped": "database not at head"}
    if spec.password is None:
        # A generated password would be shown to nobody: refuse rather than create an
        # account no one can log in to.
        return {
            "username": spec.username,
            "created": False,
            "skipped": "no password configured "
            "(FIRST_SUPERUSER_PASSWORD or FIRST_SUPERUSER_SECRET_ARN)",
        }
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        try:
            ensured = await ensure_superuser(session, spec)
        except ValidationError as exc:
            # The configured user is not a valid one: name the FIRST_SUPERUSER_* setting (or
            # that key of its secret) rather than print pydantic's text, the password in it.
            raise SettingsError.from_validation_error(exc, prefix="FIRST_SUPERUSER_") from None
        await session.commit()
    return {"username": ensured.username, "created": ensured.created}


def safe_error_message(exc: BaseException) -> str:
    """The error without SQL parameters (a failed INSERT would show a password hash).

    Settings errors are already value-free (`SettingsError`)."""
    cause: BaseException = exc
    if isinstance(exc, StatementError) and exc.orig is not None:
        # The driver's own error (e.g. asyncpg's DivisionByZeroError), without the
        # statement and its parameters that SQLAlchemy's message adds.
        cause = exc.orig.__cause__ or exc.orig
    text = f"{type(cause).__name__}: {cause}".strip()
    return text[:MAX_ERROR_MESSAGE_CHARS]


def own_frames(exc: BaseException) -> str:
    """Where it failed in our code and the revision scripts: frames only, no messages
    (exception messages may carry SQL parameters), library frames left out."""
    own_dirs = (str(Path(__file__).resolve().parents[1]), str(migrations_dir().resolve()))
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename.startswith(own_dirs)
    ]
    return "".join(traceback.format_list(frames[-MAX_TRACEBACK_FRAMES:]))


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
