"""The concurrent-index recipe (docs/migrations-and-releases.md, lint case 8020) on a real
PostgreSQL: a build that failed leaves an invalid index, and the retried release must
rebuild it rather than record the revision as applied over it."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from alembic.config import Config
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from lambda_app.devtools.database import database_url, drop_database, ensure_database
from lambda_app.devtools.migration_lint import scripts_config
from lambda_app.migrate.actions import MigrationRequest
from lambda_app.migrate.lock import DDL_LOCK_TIMEOUT_ATTRIBUTE
from lambda_app.migrate.runner import run_migration
from tests.migrations.scripts import real_head

LINT_CASES = Path(__file__).resolve().parent / "lint_cases"
RECIPE = "8020"
INDEX = "ix_users_first_name"


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
    config.attributes[DDL_LOCK_TIMEOUT_ATTRIBUTE] = 0.5  # the failure, sooner
    return config


async def upgrade(url: str, revision: str) -> list[str]:
    request = MigrationRequest("upgrade", revision)
    return (await run_migration(request, config=recipe_config(), database_url=url)).applied


async def index_is_valid(connection: asyncpg.Connection) -> bool | None:
    """None: no such index."""
    valid: bool | None = await connection.fetchval(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)", INDEX
    )
    return valid


def test_a_retried_release_rebuilds_the_index_a_failed_build_left_invalid(
    fresh_database: str,
) -> None:
    plain = make_url(fresh_database).set(drivername="postgresql")

    async def scenario() -> None:
        # given: the real head, and a transaction writing to the table the index is for
        await upgrade(fresh_database, real_head())
        observer = await asyncpg.connect(plain.render_as_string(hide_password=False))
        writer = await asyncpg.connect(plain.render_as_string(hide_password=False))
        try:
            async with writer.transaction():
                await writer.execute("UPDATE users SET first_name = first_name WHERE false")

                # when: the build waits for it past the DDL lock timeout
                with pytest.raises(DBAPIError, match="lock timeout"):
                    await upgrade(fresh_database, RECIPE)

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
