"""The invocation's deadline: set by the request middleware, held off by the request's COMMIT.

A request still running shortly before the Lambda invocation's timeout is cancelled and
answered 503 (`lambda_app.core.middleware`): past the timeout Lambda would end it with no
answer, no log line and no metrics, and reset the container. Its COMMIT is the exception:
cancelled mid-way, the write might stand while the client is told it failed (a refresh
token spent, a retry then seen as a replay), so from the moment it starts the request runs
to its end. What follows a COMMIT (a mail) still ends before the deadline, by
`seconds_left`: the request answers in time even when it can no longer be cancelled.
A transaction of its own (a failed login's counter) commits before the request goes on:
its COMMIT is not cancelled either, and the deadline applies again after it while it is
still ahead, so what the request does next still answers 503 in time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
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


def _still_cancelling() -> _Deadline | None:
    """The request's deadline, unless there is none, it passed, or it is held off."""
    current = _current.get()
    if current is None or current.timeout.when() is None or current.timeout.expired():
        return None
    return current


def hold_off() -> None:
    """No cancelling from here on (the request's COMMIT starts), unless it already began."""
    current = _still_cancelling()
    if current is not None:
        current.timeout.reschedule(None)


@contextlib.contextmanager
def held_off() -> Iterator[None]:
    """No cancelling while the block runs (a COMMIT the request goes on after), then the
    deadline again if it is still ahead. Past it, the request runs to its end, as after
    `hold_off`: cancelled at once, it would answer 503 for what it has just committed."""
    current = _still_cancelling()
    if current is None:
        yield
        return
    current.timeout.reschedule(None)
    try:
        yield
    finally:
        assert current.ends_at is not None  # it had a deadline: `_still_cancelling`
        if asyncio.get_running_loop().time() < current.ends_at:
            current.timeout.reschedule(current.ends_at)


def seconds_left() -> float | None:
    """Seconds until the request's deadline, held off or not; None without one. For
    work that can't be cancelled by it (after the COMMIT) but must still end in time."""
    current = _current.get()
    if current is None or current.ends_at is None:
        return None
    return current.ends_at - asyncio.get_running_loop().time()
