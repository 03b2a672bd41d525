"""A request's database connection, opened while the request is still on its way to it.

With `NullPool` every request opens a connection: TCP, TLS and authentication to
RDS Proxy; a server process forked per connection locally. Meanwhile the request
spends its first half millisecond or so of CPU on dependencies, the token check
and SQLAlchemy's session before it sends its first query. The request's session
dependency starts the connection first, so the other side works on it during
that time (`benchmarks/`: about 0.5 ms off the warm p50 here).

The connection belongs to the request that started it (a context variable): the
engine's creator takes it instead of dialling again, once. A request that ends
without a query (a 401, a validation error) closes it unused: with Terminate if it
is open, by cancelling the attempt if it is still being set up. The cancellation
runs on the event loop's next turn; on Lambda that can be the next invocation, so
the proxy may hold such a half-made client connection while the container is
frozen (it times it out). Only requests that fail before their first query do this.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

Opener = Callable[[], Coroutine[Any, Any, Any]]  # opens one asyncpg connection

# Event-loop turns the new connection gets before the request goes on: enough to
# send its startup message (socket connect, writable, send) so the server starts
# on it. Measured: 0 turns gain nothing, 5 and more all gain about the same.
_HEAD_START_TURNS = 5


@dataclass(frozen=True)
class _Pending:
    opener: Opener
    task: asyncio.Task[Any]


_pending: ContextVar[_Pending | None] = ContextVar("early_connection", default=None)


async def start(opener: Opener) -> None:
    """Start opening this request's connection with `opener`, and give it a head start."""
    task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(opener())
    _pending.set(_Pending(opener, task))
    for _ in range(_HEAD_START_TURNS):
        await asyncio.sleep(0)


def take(opener: Opener) -> Awaitable[Any] | None:
    """The connection this request started with `opener`, or None; each one is taken once."""
    pending = _pending.get()
    if pending is None or pending.opener is not opener:
        return None
    _pending.set(None)
    return pending.task


def discard() -> None:
    """Close this request's connection if nothing took it. Never waits for it."""
    pending = _pending.get()
    if pending is None:
        return
    _pending.set(None)
    if pending.task.done():
        _close_unused(pending.task)
    else:
        pending.task.cancel()
        pending.task.add_done_callback(_close_unused)


def _close_unused(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    if task.exception() is not None:
        return  # nobody needed it; the request already has its answer
    with contextlib.suppress(Exception):
        task.result().terminate()
