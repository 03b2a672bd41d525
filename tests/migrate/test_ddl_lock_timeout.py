"""The migration's wait for a busy table against the API's own time limit, as the database
has them: a request queued behind a waiting ALTER must outlast the ALTER, not fail first.
And the statements that wait without that limit: the concurrent index builds and drops."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.migrate.lock import DDL_LOCK_TIMEOUT_SECONDS, is_concurrent_index_ddl


async def test_a_revisions_ddl_gives_up_well_before_a_request_queued_behind_it(
    session: AsyncSession,
) -> None:
    # given: the statement_timeout an API session has (the `session` fixture logs in as the
    # API role, whose setting migration 0005 makes)
    row = (
        await session.execute(
            text(
                "SELECT setting::int AS milliseconds, source FROM pg_settings "
                "WHERE name = 'statement_timeout'"
            )
        )
    ).one()
    assert row.source == "user"  # the role's own setting, not the server's default

    # then: a request that waited the whole DDL lock timeout behind an ALTER still has at
    # least half of its own time left to run once the ALTER has given up
    assert row.milliseconds / 2 >= DDL_LOCK_TIMEOUT_SECONDS * 1000


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_a ON users (first_name)",
        "create unique index concurrently ix_a on users (email)",
        "DROP INDEX CONCURRENTLY IF EXISTS ix_a",
        "REINDEX INDEX CONCURRENTLY ix_a",
        "REINDEX (VERBOSE) TABLE CONCURRENTLY users",
        "\n  -- rebuilt: it was bloated\n  /* 0042 */ CREATE INDEX CONCURRENTLY ix_a ON t (a)",
    ],
)
def test_concurrent_index_statements_wait_without_the_ddl_lock_timeout(statement: str) -> None:
    assert is_concurrent_index_ddl(statement)


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE INDEX ix_a ON users (first_name)",  # locks writes out: keeps the limit
        "ALTER TABLE users ADD COLUMN note text",
        "SELECT 1; CREATE INDEX CONCURRENTLY ix_a ON users (a)",  # refused in one anyway
        "COMMENT ON INDEX ix_a IS 'CREATE INDEX CONCURRENTLY'",
    ],
)
def test_every_other_statement_keeps_the_ddl_lock_timeout(statement: str) -> None:
    assert not is_concurrent_index_ddl(statement)
