"""The concurrent-index recipe (docs/migrations-and-releases.md, lint case 8020) on a real
PostgreSQL: the build waits for older transactions, however long, rather than fail on the
DDL lock timeout; and a build that failed leaves an invalid index, which the retried
release must rebuild rather than record the revision as applied over it."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from alembic.config import Config
from sqlalchemy.engine import make_url

from lambda_app.devtools.database import database_url, drop_database, ensure_database
from lambda_app.devtools.migration_lint import scripts_config
from lambda_app.migrate.actions import MigrationRequest
from lambda_app.migrate.deadline import SERVER_LEAD_SECONDS, Deadline, MigrationDeadlineExceeded
from lambda_app.migrate.lock import DDL_LOCK_TIMEOUT_ATTRIBUTE
from lambda_app.migrate.runner import run_migration
from tests.fixtures.polling import wait_until
from tests.migrations.scripts import real_head

LINT_CASES = Path(__file__).resolve().parent / "lint_cases"
RECIPE = "8020"
INDEX = "ix_users_first_name"
DDL_LOCK_TIMEOUT_SECONDS = 0.5  # the tests' own, so that waiting past it is quick
# The build waiting on another transaction (its virtual transaction id) for this long.
BUILD_WAITING_SQL = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND query LIKE 'CREATE INDEX CONCURRENTLY%'
  AND wait_event = 'virtualxid' AND clock_timestamp() - query_start > $1
"""


@pytest.fixture
def fresh_database(admin_url: str) -> Iterator[str]:
    suffix = os.environ.get("TEST_DATABASE_SUFFIX", "")
    name = f"lambda_app_index_recipe_{uuid.uuid4().hex[:10]}{suffix}"
    asyncio.run(ensure_database(admin_url, name))
    try:
        yield database_url(admin_url, name)
    finally:
        asyncio.run(drop_database(admin_url, name))


def recipe_config() -> Config:
    config = scripts_config([LINT_CASES])
    config.attributes[DDL_LOCK_TIMEOUT_ATTRIBUTE] = DDL_LOCK_TIMEOUT_SECONDS
    return config


async def upgrade(url: str, revision: str, *, deadline: Deadline | None = None) -> list[str]:
    request = MigrationRequest("upgrade", revision)
    result = await run_migration(
        request, config=recipe_config(), database_url=url, deadline=deadline
    )
    return result.applied


def plain_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def index_is_valid(connection: asyncpg.Connection) -> bool | None:
    """None: no such index."""
    valid: bool | None = await connection.fetchval(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)", INDEX
    )
    return valid


def test_a_build_waits_for_an_older_transaction_past_the_ddl_lock_timeout(
    fresh_database: str,
) -> None:
    async def scenario() -> None:
        # given: the real head, and a transaction of another client holding a snapshot
        # (REPEATABLE READ, as pg_dump's) after reading a table the index is not for
        await upgrade(fresh_database, real_head())
        observer = await asyncpg.connect(plain_dsn(fresh_database))
        reader = await asyncpg.connect(plain_dsn(fresh_database))
        try:
            snapshot = reader.transaction(isolation="repeatable_read")
            await snapshot.start()
            await reader.fetchval("SELECT count(*) FROM login_throttle")

            # when: the build has waited for that transaction longer than a table's DDL
            # may wait for a lock, and then the transaction ends
            build = asyncio.create_task(upgrade(fresh_database, RECIPE))

            async def waited_past_the_lock_timeout() -> bool:
                if build.done():
                    build.result()  # its error, if it failed
                    raise AssertionError("the build ended while the older transaction ran")
                waited = dt.timedelta(seconds=2 * DDL_LOCK_TIMEOUT_SECONDS)
                return bool(await observer.fetchval(BUILD_WAITING_SQL, waited))

            await wait_until(waited_past_the_lock_timeout, lambda: "the build never waited")
            await snapshot.rollback()

            # then: the build went on, and the revision is applied with a usable index
            assert await build == [RECIPE]
            assert await index_is_valid(observer) is True
        finally:
            await reader.close()
            await observer.close()

    asyncio.run(scenario())


def test_a_retried_release_rebuilds_the_index_a_failed_build_left_invalid(
    fresh_database: str,
) -> None:
    async def scenario() -> None:
        # given: the real head, and a transaction writing to the table the index is for
        await upgrade(fresh_database, real_head())
        observer = await asyncpg.connect(plain_dsn(fresh_database))
        writer = await asyncpg.connect(plain_dsn(fresh_database))
        try:
            async with writer.transaction():
                await writer.execute("UPDATE users SET first_name = first_name WHERE false")

                # when: the build waits for it until the run's deadline
                with pytest.raises(MigrationDeadlineExceeded):
                    await upgrade(
                        fresh_database, RECIPE, deadline=Deadline.after(SERVER_LEAD_SECONDS + 3)
                    )

            # then: an invalid index is left, and the revision is not recorded
            assert await index_is_valid(observer) is False
            versions = await observer.fetch("SELECT version_num FROM alembic_version")
            assert [row["version_num"] for row in versions] == [real_head()]

            # when: the release is retried, the table no longer busy
            applied = await upgrade(fresh_database, RECIPE)

            # then: the revision is applied with an index PostgreSQL can use
            assert applied == [RECIPE]
            assert await index_is_valid(observer) is True
        finally:
            await writer.close()
            await observer.close()

    asyncio.run(scenario())
