"""The migration function's one entry point: `run_migration(request, config=...)`.

The Lambda handler (`lambda_app.handlers.migrate`) and the CLI (`migrate`, `serve`,
`create-superuser`) are adapters over it. One run, all of it before its deadline
(`deadline`; enforced on the server and on the client, `timeouts`):

1. a fresh engine, from the migration settings (`settings`);
2. for upgrades and downgrades, the migration lock, on a connection of its own (`lock`);
3. the Alembic command, one transaction per revision, on another connection (`commands`);
4. after an upgrade, still under the lock, the first superuser (`superuser`);
5. the engine disposed: the function runs rarely, so a warm container must not keep a
   connection to the instance open between releases.

Which scripts run is the caller's choice (`config`): the handler passes the shipped
ones (`alembic_config()`), tests pass theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

from lambda_app.db.engine import build_engine
from lambda_app.migrate.actions import DEFAULT_ACTION, Action, MigrationRequest
from lambda_app.migrate.commands import run_alembic
from lambda_app.migrate.deadline import DEFAULT_RUN_SECONDS, Deadline
from lambda_app.migrate.lock import migration_lock
from lambda_app.migrate.result import MigrationResult
from lambda_app.migrate.settings import get_migration_settings, migration_settings
from lambda_app.migrate.superuser import SuperuserPolicy, ensure_first_superuser
from lambda_app.migrate.timeouts import within

__all__ = [
    "alembic_config",
    "migrate",
    "migration_settings",
    "migrations_dir",
    "run_migration",
    "upgrade_to_head",
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def migrations_dir() -> Path:
    """`migrations/` beside the package: the repo root locally, the bundle root on Lambda."""
    return PROJECT_ROOT / "migrations"


def alembic_config() -> Config:
    """The shipped scripts."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


async def run_migration(
    request: MigrationRequest,
    *,
    config: Config,
    superuser: SuperuserPolicy | None = None,
    database_url: str | None = None,
    deadline: Deadline | None = None,
) -> MigrationResult:
    """Run one request. `superuser`: the first-superuser step after an upgrade, if any;
    `database_url`: a database other than the settings' one (tools and tests);
    `deadline`: when the run must be over (default: a run's budget on Lambda)."""
    started = time.perf_counter()
    deadline = deadline or Deadline.after(DEFAULT_RUN_SECONDS)
    deadline.check()  # no time left: not even a connection
    settings = get_migration_settings()
    engine = build_engine(
        migration_settings(settings, deadline=deadline), database_url=database_url
    )
    try:
        async with within(deadline), _lock_for(engine, request, deadline):
            result = await run_alembic(engine, request, config, deadline=deadline)
            if superuser is not None and request.action == "upgrade":
                # Still under the lock: two concurrent runs can't both create the user.
                result.superuser = await ensure_first_superuser(
                    engine, settings, superuser, at_head=result.at_head, deadline=deadline
                )
    finally:
        await engine.dispose()
    result.duration_ms = round((time.perf_counter() - started) * 1000)
    return result


async def migrate(
    engine: AsyncEngine,
    action: Action = DEFAULT_ACTION,
    revision: str | None = None,
    *,
    lock_timeout_seconds: float | None = None,
    config: Config | None = None,
    deadline: Deadline | None = None,
) -> MigrationResult:
    """One Alembic command on an engine the caller owns (its settings, its lifetime): the
    run without the engine and without the first-superuser step."""
    request = MigrationRequest(action, revision, lock_timeout_seconds)
    deadline = deadline or Deadline.after(DEFAULT_RUN_SECONDS)
    async with within(deadline), _lock_for(engine, request, deadline):
        return await run_alembic(engine, request, config or alembic_config(), deadline=deadline)


def upgrade_to_head(database_url: str) -> None:
    """Apply every pending migration to `database_url`, no superuser (tests, benchmarks)."""
    asyncio.run(
        run_migration(MigrationRequest(), config=alembic_config(), database_url=database_url)
    )


@contextlib.asynccontextmanager
async def _lock_for(
    engine: AsyncEngine, request: MigrationRequest, deadline: Deadline
) -> AsyncIterator[None]:
    """The migration lock for the commands that change the schema; reads need none."""
    if not request.mutates:
        yield
        return
    async with migration_lock(
        engine, timeout_seconds=request.lock_timeout_seconds, deadline=deadline
    ):
        yield
