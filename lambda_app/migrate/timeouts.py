"""The run's deadline, enforced by PostgreSQL on the migration's sessions and by the client.

PostgreSQL does not notice that a client has gone while one of its statements runs: a DDL
statement whose Lambda was killed would keep running, and keep its ACCESS EXCLUSIVE lock
with every API request queued behind it. So the server bounds each session itself:

- `statement_timeout`: the time left before the deadline, set again before each statement
  on the connection that runs the revisions (a value set once per session would let a
  statement that starts late run past the deadline);
- `idle_in_transaction_session_timeout`: a revision's transaction left idle (its client
  gone, or stuck in Python) ends, and releases its locks, within a minute and never after
  the deadline;
- `client_connection_check_interval`: a running statement whose client closed its
  connection stops within seconds, deadline or not.

Session settings are fine here: the migration function connects to the instance directly,
not through RDS Proxy, where they would pin the session.

On the client, `within` cancels the whole run at the deadline, whatever it is waiting for
(asyncpg then sends PostgreSQL a cancel request), and reads the server's statement timeout
as the deadline too.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util import await_

from lambda_app.migrate.deadline import Deadline, MigrationDeadlineExceeded

# Far above any pause between a revision's statements (Python building the next one).
IDLE_IN_TRANSACTION_SECONDS = 60.0
# How often a running statement checks that its client is still there (a poll, cheap).
CLIENT_CHECK_INTERVAL_SECONDS = 5.0
QUERY_CANCELED = "57014"  # SQLSTATE of statement_timeout (and of a cancel request)


def milliseconds(seconds: float) -> str:
    """A timeout setting's value: rounded up, so it never fires early, and at least 1 ms
    (0 would mean no limit)."""
    return f"{max(1, math.ceil(seconds * 1000))}ms"


def _server_bounds(deadline: Deadline) -> tuple[str, str]:
    """`statement_timeout` and `idle_in_transaction_session_timeout` for this moment."""
    left = deadline.server_seconds_left()
    if left <= 0:
        raise MigrationDeadlineExceeded(deadline)
    return milliseconds(left), milliseconds(min(IDLE_IN_TRANSACTION_SECONDS, left))


async def bound_session(connection: AsyncConnection, deadline: Deadline) -> None:
    """Bound the session's statements and idle transactions by the deadline, and have its
    statements check for a vanished client. Ends the transaction that opened."""
    statement, idle = _server_bounds(deadline)
    await connection.execute(
        text(
            "SELECT set_config('statement_timeout', :statement, false), "
            "set_config('idle_in_transaction_session_timeout', :idle, false), "
            "set_config('client_connection_check_interval', :check, false)"
        ),
        {
            "statement": statement,
            "idle": idle,
            "check": milliseconds(CLIENT_CHECK_INTERVAL_SECONDS),
        },
    )
    await connection.commit()


def bound_each_statement(connection: AsyncConnection, deadline: Deadline) -> None:
    """Before each statement on `connection`, bound it by the time left (one round trip,
    in the simple protocol); past the deadline, start no statement at all."""

    def before_statement(sync_connection: Connection, *_: Any) -> None:
        statement, idle = _server_bounds(deadline)
        driver = sync_connection.connection.driver_connection
        assert driver is not None  # a connection that runs statements has one
        # Values of ours (digits and "ms"): nothing to quote.
        await_(
            driver.execute(
                f"SET statement_timeout = '{statement}'; "
                f"SET idle_in_transaction_session_timeout = '{idle}'"
            )
        )

    event.listen(connection.sync_connection, "before_cursor_execute", before_statement)


@contextlib.asynccontextmanager
async def within(deadline: Deadline) -> AsyncIterator[None]:
    """Run the block until the deadline at most; its end, whichever side noticed it first,
    raises `MigrationDeadlineExceeded`."""
    deadline.check()
    loop = asyncio.get_running_loop()
    timeout = asyncio.timeout_at(loop.time() + deadline.seconds_left())
    try:
        async with timeout:
            yield
    except TimeoutError as exc:
        if timeout.expired():
            raise MigrationDeadlineExceeded(deadline) from exc
        raise
    except DBAPIError as exc:
        # Only this module sets a statement timeout on these sessions, and it fires at the
        # server's share of the deadline, not before (see `milliseconds`): a cancel before
        # that came from someone else (pg_cancel_backend) and is reported as it is.
        ours = deadline.server_seconds_left() <= 0
        if ours and getattr(exc.orig, "sqlstate", None) == QUERY_CANCELED:
            raise MigrationDeadlineExceeded(deadline) from exc
        raise
