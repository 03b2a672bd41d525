"""Waiting, within a bound, for something the server does on its own time (a backend exiting,
a proxy logging a disconnect), and counting the server's backends to wait on."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

POLL_INTERVAL_SECONDS = 0.05
POLLS = 300  # a bound against hanging (15 s), not a speed target


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], failure: Callable[[], str]
) -> None:
    """Return once `condition()` (plain or async) is true; fail with `failure()` if it never is."""
    for _ in range(POLLS):
        outcome = condition()
        if await outcome if inspect.isawaitable(outcome) else outcome:
            return
        await asyncio.sleep(POLL_INTERVAL_SECONDS)
    raise AssertionError(failure())


async def count_backends(
    database_url: str, *, pid: int | None = None, application_name: str | None = None
) -> int:
    """Server backends in pg_stat_activity with this pid or this application_name."""
    from lambda_app.local.embedded_postgres import plain_connection

    async with plain_connection(database_url) as conn:
        found = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 OR application_name = $2",
            pid,
            application_name,
        )
    return int(found)
