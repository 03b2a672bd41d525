"""The invocation's deadline: set by the request middleware, held off by the request's COMMIT.

A request still running shortly before the Lambda invocation's timeout is cancelled and
answered 503 (`lambda_app.core.middleware`): past the timeout Lambda would end it with no
answer, no log line and no metrics, and reset the container. Its COMMIT is the exception:
cancelled mid-way, the write might stand while the client is told it failed (a refresh
token spent, a retry then seen as a replay), so from the moment it starts the request runs
to its end. What follows a COMMIT (a mail) still ends before the deadline, by
`seconds_left`: the request answers in time even when it can no longer be cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

# Kept back from the invocation's remaining time. A cancelled query's connection is
# closed by SQLAlchemy's adapter, which waits up to 2 s for the cancel to land (so that
# what it was running ends on the server too); then the 503, its log line and metrics.
DEADLINE_MARGIN_SECONDS = 3.0


@dataclass(frozen=True)
class _Deadline:
    timeout: asyncio.Timeout
    ends_at: float | None  # loop time; kept when `hold_off` stops the cancelling


_current: ContextVar[_Deadline | None] = ContextVar("request_deadline", default=None)


@contextlib.asynccontextmanager
async def request_deadline(lambda_context: Any) -> AsyncIterator[asyncio.Timeout]:
    """The request's block, cancelled the margin before the invocation's remaining time
    (never without a usable Lambda context: tests, uvicorn); `hold_off` reaches it."""
    when = None
    remaining_ms = getattr(lambda_context, "get_remaining_time_in_millis", None)
    remaining = remaining_ms() if callable(remaining_ms) else None
    if isinstance(remaining, int | float) and remaining > 0:
        when = asyncio.get_running_loop().time() + remaining / 1000 - DEADLINE_MARGIN_SECONDS
    deadline = asyncio.timeout_at(when)
    token = _current.set(_Deadline(deadline, when))
    try:
        async with deadline:
            yield deadline
    finally:
        _current.reset(token)


def hold_off() -> None:
    """No cancelling from here on (the request's COMMIT starts), unless it already began."""
    current = _current.get()
    if current is None:
        return
    deadline = current.timeout
    if deadline.when() is not None and not deadline.expired():
        deadline.reschedule(None)


def seconds_left() -> float | None:
    """Seconds until the request's deadline, held off or not; None without one. For
    work that can't be cancelled by it (after the COMMIT) but must still end in time."""
    current = _current.get()
    if current is None or current.ends_at is None:
        return None
    return current.ends_at - asyncio.get_running_loop().time()
