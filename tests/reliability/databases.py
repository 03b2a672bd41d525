"""Scratch databases for the reliability tests, and raw asyncpg access to check what is stored."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from lambda_app.devtools.database import database_url


def create_migrated_database(admin_url: str, name: str) -> str:
    from lambda_app.devtools.database import drop_database, ensure_database
    from lambda_app.migrate.runner import upgrade_to_head

    asyncio.run(drop_database(admin_url, name))
    asyncio.run(ensure_database(admin_url, name))
    url = database_url(admin_url, name)
    upgrade_to_head(url)
    return url


def asyncpg_dsn(url: str) -> dict[str, object]:
    """asyncpg.connect() keyword arguments for a SQLAlchemy URL."""
    parsed = make_url(url)
    return {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "database": parsed.database,
    }


async def execute(url: str, sql: str) -> None:
    """Run `sql` on a connection of its own, outside the app."""
    conn = await asyncpg.connect(**asyncpg_dsn(url))  # type: ignore[arg-type]
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def fetchval(url: str, sql: str, *args: Any) -> Any:
    """The first value `sql` returns, on a connection of its own, outside the app."""
    conn = await asyncpg.connect(**asyncpg_dsn(url))  # type: ignore[arg-type]
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def insert_superuser(database_url: str, username: str, password: str) -> None:
    """A superuser row written straight to `database_url`, outside the app."""
    from lambda_app.identity.passwords import hash_password

    conn = await asyncpg.connect(**asyncpg_dsn(database_url))  # type: ignore[arg-type]
    try:
        await conn.execute(
            "INSERT INTO users (username, slug, email, hashed_password, is_superuser) "
            "VALUES ($1, $2, $3, $4, true)",
            username,
            username.replace("_", "-"),
            f"{username}@example.com",
            hash_password(password),
        )
    finally:
        await conn.close()
