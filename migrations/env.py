"""Alembic environment: async, NullPool, one transaction per migration.

Three ways in:
- `alembic upgrade head` / `alembic check` from the repo root: the URL comes from
  `-x url=...` or the app settings (DATABASE_URL, or the IAM / Secrets Manager sources);
  the run holds the same advisory lock as the migration Lambda;
- programmatically (`lambda_app.migrate.runner`): the runner passes an open
  connection in `config.attributes["connection"]` (another of its connections holds the
  lock), and `config.attributes["on_version_apply"]` to record what ran;
- offline, `alembic upgrade <from>:<to> --sql`: no database, the SQL a run would send,
  printed (or written to `config.output_buffer`) for the PostgreSQL dialect. The migration
  lint (`lambda_app.devtools.migration_lint`, `make lint`) reads each revision's SQL so.
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
        # Each revision commits on its own: a failing revision rolls back alone and the
        # ones before it stay applied.
        transaction_per_migration=True,
        compare_type=True,
        compare_server_default=True,
        on_version_apply=config.attributes.get("on_version_apply"),
    )


def _run_sync(connection: Connection) -> None:
    if connection.in_transaction():
        # Alembic would take this for the caller's transaction and run every revision
        # inside it, silently turning transaction_per_migration off.
        raise RuntimeError("hand Alembic a connection with no transaction open")
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()
    if connection.in_transaction():
        # Work done outside any revision (e.g. creating an empty alembic_version table).
        connection.commit()


async def _run_with_own_engine() -> None:
    from lambda_app.db.engine import build_engine
    from lambda_app.migrate.lock import DDL_LOCK_TIMEOUT_SECONDS, limit_lock_waits, migration_lock
    from lambda_app.migrate.settings import get_migration_settings, migration_settings

    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    engine = build_engine(migration_settings(get_migration_settings()), database_url=url)
    try:
        async with migration_lock(engine), engine.connect() as connection:
            await limit_lock_waits(connection, DDL_LOCK_TIMEOUT_SECONDS)
            await connection.run_sync(_run_sync)
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        # The dialect alone: no driver, no connection. Literal binds, so the SQL stands on
        # its own (a linter, a DBA) without its parameters.
        dialect_name="postgresql",
        target_metadata=target_metadata,
        literal_binds=True,
        # BEGIN/COMMIT around each revision, as online: an autocommit block (a concurrent
        # index build) shows up between a COMMIT and the next BEGIN.
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_sync(connection)
    else:
        asyncio.run(_run_with_own_engine())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
