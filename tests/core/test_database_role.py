"""The API's database role reads and writes rows, and PostgreSQL refuses it everything else."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from lambda_app.workload import API_ROLE
from tests.reliability.databases import asyncpg_dsn


@pytest.fixture
async def as_api_role(api_database_url_for_tests: str) -> AsyncIterator[Any]:
    conn = await asyncpg.connect(**asyncpg_dsn(api_database_url_for_tests))  # type: ignore[arg-type]
    transaction = conn.transaction()
    await transaction.start()
    try:
        yield conn
    finally:
        await transaction.rollback()
        await conn.close()


async def test_the_app_connects_as_the_api_role(as_api_role: Any) -> None:
    assert await as_api_role.fetchval("SELECT current_user") == API_ROLE
    assert not await as_api_role.fetchval(
        "SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = $1",
        API_ROLE,
    )


async def test_it_reads_and_writes_rows_of_the_apps_tables(as_api_role: Any) -> None:
    name = f"role_{uuid.uuid4().hex[:12]}"
    user_id = await as_api_role.fetchval(
        "INSERT INTO users (username, slug, email, first_name, last_name, hashed_password)"
        " VALUES ($1, $1, $2, '', '', 'x') RETURNING id",  # an identity column
        name,
        f"{name}@example.com",
    )
    await as_api_role.execute("UPDATE users SET first_name = 'Ada' WHERE id = $1", user_id)
    assert await as_api_role.fetchval("SELECT first_name FROM users WHERE id = $1", user_id) == (
        "Ada"
    )
    await as_api_role.execute("DELETE FROM users WHERE id = $1", user_id)
    await as_api_role.execute(
        "INSERT INTO login_throttle (login, failures, window_started_at) VALUES ($1, 1, now())",
        name,
    )


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE intruder (id int)",
        "ALTER TABLE users ADD COLUMN intruder text",
        "DROP TABLE login_throttle",
        "TRUNCATE users",
        "CREATE INDEX intruder ON users (email)",
        "CREATE ROLE intruder",
        "CREATE SCHEMA intruder",
        "CREATE TEMPORARY TABLE intruder (id int)",  # it would pin an RDS Proxy session too
        "UPDATE alembic_version SET version_num = 'intruder'",
        "DELETE FROM alembic_version",
    ],
)
async def test_postgres_refuses_it_anything_else(as_api_role: Any, statement: str) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_api_role.execute(statement)
