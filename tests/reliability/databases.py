"""Scratch databases for the reliability tests, and raw asyncpg access to check what is stored."""

from __future__ import annotations

import asyncio

from sqlalchemy.engine import make_url

from lambda_app.local.database import database_url


def create_migrated_database(admin_url: str, name: str) -> str:
    from lambda_app.local.embedded_postgres import drop_database, ensure_database
    from lambda_app.migrations_runner import upgrade_to_head

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
