"""The migration's wait for a busy table against the API's own time limit, as the database
has them: a request queued behind a waiting ALTER must outlast the ALTER, not fail first."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.migrate.lock import DDL_LOCK_TIMEOUT_SECONDS


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
