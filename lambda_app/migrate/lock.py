"""The migration lock: a PostgreSQL advisory lock that serializes runs that change the schema.

It is held on a connection of its own for the whole run (two Lambda invocations, a deploy
beside `make run`), and it is session-level, not transaction-level, so it survives the
per-revision commits. Session-level locks pin RDS Proxy sessions, which is why the
migration function connects to the database instance directly, not through the proxy.

A second run polls for the lock (`pg_try_advisory_lock`) rather than waiting in
`pg_advisory_lock`: a statement waiting on the server holds a snapshot, and an index built
`CONCURRENTLY` by the run holding the lock waits for every older snapshot, so the two
would wait for each other until the run's deadline failed the build.

The revisions' own waits for table locks are bounded here too (`limit_lock_waits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.util import await_

from lambda_app.migrate.deadline import DEFAULT_RUN_SECONDS, Deadline, MigrationDeadlineExceeded
from lambda_app.migrate.timeouts import milliseconds

# Fixed 64-bit key: the ASCII bytes of "lambdamg". Advisory locks are per database, so
# every copy of the app (dev, test, prod) has its own.
MIGRATION_LOCK_KEY = int.from_bytes(b"lambdamg", "big")


# How long a revision's DDL may wait for a table lock. ALTER TABLE queues behind a long
# transaction on that table, and every request that touches the table then queues behind
# the ALTER: past this, the revision fails and rolls back (the release can be retried)
# rather than stall the API. Well below the API role's statement_timeout (9 s, migration
# 0005): a request queued behind the ALTER for this long still has most of its own time
# left when the ALTER gives up (tests/migrate/test_ddl_lock_timeout.py checks the two).
# Tests shorten it through the Alembic config's attributes.
DDL_LOCK_TIMEOUT_SECONDS = 3.0
DDL_LOCK_TIMEOUT_ATTRIBUTE = "ddl_lock_timeout_seconds"

# Except for an index built, dropped or rebuilt CONCURRENTLY. It takes a lock no read or
# write waits for (SHARE UPDATE EXCLUSIVE), then waits for other transactions to end: a
# build for every older one in the database (a slow report, a client idle in a
# transaction, pg_dump), a drop for those using the table. The DDL lock timeout would fail
# it on any of them, and leave an invalid index, though that wait stalls nothing but the
# statement itself; the run's deadline (statement_timeout) still ends it.
CONCURRENT_INDEX_DDL = re.compile(
    r"(?:\s+|--[^\n]*\n|/\*.*?\*/)*"  # whitespace and comments before the statement
    r"(?:CREATE\s+(?:UNIQUE\s+)?INDEX|DROP\s+INDEX|REINDEX\s+(?:\([^)]*\)\s*)?\w+)"
    r"\s+CONCURRENTLY\b",
    re.IGNORECASE | re.DOTALL,
)


def is_concurrent_index_ddl(statement: str) -> bool:
    return CONCURRENT_INDEX_DDL.match(statement) is not None


async def limit_lock_waits(connection: AsyncConnection, seconds: float) -> None:
    """Set `lock_timeout` for the session, and end the transaction that opened; lift it
    around each concurrent index statement (`CONCURRENT_INDEX_DDL`)."""
    limit = milliseconds(seconds)
    await connection.execute(
        text("SELECT set_config('lock_timeout', :value, false)"), {"value": limit}
    )
    await connection.commit()
    lifted = False

    def before_statement(
        sync_connection: Connection, _cursor: Any, statement: str, *_: Any
    ) -> None:
        # No limit before a concurrent index statement, the limit again before the next
        # other one: a round trip at each change, none otherwise. No rollback undoes the
        # limit's return: a concurrent index statement runs only outside a transaction
        # (PostgreSQL refuses it inside one), so the SET before the statement after it
        # does too (the driver sends that statement's BEGIN after this hook).
        nonlocal lifted
        if is_concurrent_index_ddl(statement) == lifted:
            return
        lifted = not lifted
        driver = sync_connection.connection.driver_connection
        assert driver is not None  # a connection that runs statements has one
        # Values of ours (digits and "ms"): nothing to quote.
        await_(driver.execute(f"SET lock_timeout = '{'0' if lifted else limit}'"))

    event.listen(connection.sync_connection, "before_cursor_execute", before_statement)


# How often a second run tries for the lock: it starts at most this long after the first ends.
LOCK_POLL_SECONDS = 0.25
# How long the unlock may wait for its answer: a round trip, with room for a busy server.
# It is part of what a failed run does after its deadline (REPORTING_MARGIN_SECONDS).
UNLOCK_TIMEOUT_SECONDS = 2.0


class MigrationLockTimeout(RuntimeError):
    """Another run held the migration lock for longer than we were willing to wait."""


def lock_wait_seconds(requested: float | None, deadline: Deadline) -> tuple[float, bool]:
    """How long to wait for the lock, and whether the deadline is what limits it: what
    the caller asked for, or by default as long as the run's time allows, never longer.

    The first run may itself take (nearly) the whole function timeout, so a second one
    (a `release` during a deploy) that gave up sooner would fail a deploy whose migration
    went fine."""
    left = deadline.server_seconds_left()
    if left <= 0:
        raise MigrationDeadlineExceeded(deadline)
    if requested is not None and requested < left:
        return requested, False
    return left, True


@contextlib.asynccontextmanager
async def migration_lock(
    engine: AsyncEngine,
    *,
    timeout_seconds: float | None = None,
    deadline: Deadline | None = None,
) -> AsyncIterator[None]:
    """Hold the migration lock on a dedicated connection for the block.

    A second caller tries for it until `timeout_seconds` (at most until the deadline) have
    passed, and gets it once the first one is done; it then finds nothing left to apply.
    """
    deadline = deadline or Deadline.after(DEFAULT_RUN_SECONDS)
    wait, until_deadline = lock_wait_seconds(timeout_seconds, deadline)
    # From now: connecting counts against the wait, which never outlasts the deadline.
    give_up_at = asyncio.get_running_loop().time() + wait
    async with engine.connect() as raw_connection:
        # Autocommit: the lock connection never sits "idle in transaction" for minutes.
        connection = await raw_connection.execution_options(isolation_level="AUTOCOMMIT")
        if not await _take_lock(connection, give_up_at):
            waited = f"{wait:.1f} s, all the time this run had" if until_deadline else f"{wait:g} s"
            raise MigrationLockTimeout(
                f"another migration run still holds the migration lock after {waited}; "
                "try again when it has finished"
            )
        try:
            yield
        finally:
            await _unlock(connection)


async def _unlock(connection: AsyncConnection) -> None:
    """Release the lock explicitly, if the server answers within UNLOCK_TIMEOUT_SECONDS.

    The connection is closed right after, and the end of its session releases a
    session-level lock as well: so when the connection is unusable (a run cancelled at its
    deadline) or the server does not answer, the close is left to do it. Waiting for the
    answer would take up to asyncpg's command timeout, the whole run's budget, and Lambda
    would end the run before it reported its failure."""
    with contextlib.suppress(SQLAlchemyError, TimeoutError):
        async with asyncio.timeout(UNLOCK_TIMEOUT_SECONDS):
            await connection.execute(
                text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )


async def _take_lock(connection: AsyncConnection, give_up_at: float) -> bool:
    """Try for the lock every LOCK_POLL_SECONDS until the loop's clock reads `give_up_at`;
    whether it was taken."""
    loop = asyncio.get_running_loop()
    try_lock = text("SELECT pg_try_advisory_lock(:key)")
    while True:
        if await connection.scalar(try_lock, {"key": MIGRATION_LOCK_KEY}):
            return True
        left = give_up_at - loop.time()
        if left <= 0:
            return False
        await asyncio.sleep(min(LOCK_POLL_SECONDS, left))
