"""Alembic environment: async, NullPool, one transaction per migration.

Two ways in:
- `alembic upgrade head` from the repo root: the URL comes from the app settings
  (DATABASE_URL) or from `-x url=...`;
- programmatically (`lambda_app.migrations_runner`): the runner passes an open
  connection in `config.attributes["connection"]` (it holds the advisory lock).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from lambda_app.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        transaction_per_migration=True,  # a failing revision leaves the previous one intact
        compare_type=True,
        compare_server_default=True,
    )


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    from lambda_app.core.db import build_engine
    from lambda_app.core.settings import get_settings

    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    engine = build_engine(get_settings(), database_url=url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_sync(connection)
    else:
        asyncio.run(_run_with_own_engine())


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported; run against a database")
run_migrations_online()
