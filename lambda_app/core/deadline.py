"""The invocation's deadline: set by the request middleware, held off by the request's COMMIT.

A request still running shortly before the Lambda invocation's timeout is cancelled and
answered 503 (`lambda_app.core.middleware`): past the timeout Lambda would end it with no
answer, no log line and no metrics, and reset the container. Its COMMIT is the exception:
cancelled mid-way, the write might stand while the client is told it failed (a refresh
token spent, a retry then seen as a replay), so from the moment it starts the request runs
to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

# Kept back from the invocation's remaining time. A cancelled query's connection is
# closed by SQLAlchemy's adapter, which waits up to 2 s for the cancel to land (so that
# what it was running ends on the server too); then the 503, its log line and metrics.
DEADLINE_MARGIN_SECONDS = 3.0

_current: ContextVar[asyncio.Timeout | None] = ContextVar("request_deadline", default=None)


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
    token = _current.set(deadline)
    try:
        async with deadline:
            yield deadline
    finally:
        _current.reset(token)


def hold_off() -> None:
    """No cancelling from here on (the request's COMMIT starts), unless it already began."""
    deadline = _current.get()
    if deadline is not None and deadline.when() is not None and not deadline.expired():
        deadline.reschedule(None)
