"""Rows held locked from a connection of the test's own, to fix the order of requests.

A test holds a row (`FOR UPDATE`) while it starts requests one after the other, waiting
until each is blocked on a lock; then it lets go. The requests run in the order they
queued, at the exact point each reached, so an interleaving is the same on every run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg
import httpx

from tests.reliability.databases import asyncpg_dsn

# Long enough for a loaded machine; only reached if a request never blocks (a bug).
BLOCKED_WITHIN_SECONDS = 30.0


class RowHolder:
    def __init__(self, holder: asyncpg.Connection, watcher: asyncpg.Connection) -> None:
        # The holder's transaction is open: a test may write in it (what the holder
        # plays) before letting go.
        self.connection = holder
        # Outside the holder's transaction: in one, pg_stat_activity is read only once.
        self.watcher = watcher

    async def waiting_requests(self) -> int:
        return int(
            # pg_locks, not pg_stat_activity's wait events: those are hidden from
            # roles that aren't the waiting session's (the app's role is another one).
            await self.watcher.fetchval(
                "SELECT count(DISTINCT l.pid) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                " WHERE NOT l.granted AND a.datname = current_database()"
            )
        )

    async def start_blocked(self, request: Awaitable[httpx.Response]) -> asyncio.Task[Any]:
        """Start `request` and return once it waits on a lock (it queues behind the others)."""
        before = await self.waiting_requests()
        task = asyncio.ensure_future(request)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + BLOCKED_WITHIN_SECONDS
        while await self.waiting_requests() <= before:
            assert not task.done(), f"the request did not block: {task.result()}"
            assert loop.time() < give_up, "the request never waited on a lock"
            await asyncio.sleep(0.01)
        return task


@asynccontextmanager
async def rows_held(
    database_url: str, locking_query: str, *args: object
) -> AsyncIterator[RowHolder]:
    """The rows `locking_query` (a `SELECT ... FOR UPDATE`) locks, held until the block
    ends; then the holder's transaction commits."""
    holder = await asyncpg.connect(**asyncpg_dsn(database_url))
    watcher = await asyncpg.connect(**asyncpg_dsn(database_url))
    try:
        async with holder.transaction():
            await holder.execute(locking_query, *args)
            yield RowHolder(holder, watcher)
    finally:
        await watcher.close()
        await holder.close()


def user_row_held(database_url: str, username: str) -> AbstractAsyncContextManager[RowHolder]:
    """The user's row held (`async with`), as a DELETE or a password change holds it."""
    return rows_held(database_url, "SELECT 1 FROM users WHERE username = $1 FOR UPDATE", username)
