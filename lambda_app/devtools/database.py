"""Which PostgreSQL `make run` and `make test` use: `DATABASE_URL` if set, else the embedded one;
and the plain connections that create and drop their databases.

The development and test databases are separate (`lambda_app` and
`lambda_app_test`), so no test can touch a developer's local data.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

from sqlalchemy.engine import make_url

DEV_DATABASE = "lambda_app"
TEST_DATABASE = "lambda_app_test"
# The API role's password on local servers only (the embedded one trusts loopback and
# ignores it; a server of your own with password logins needs one). On AWS the role
# has no password: it logs in with IAM tokens.
LOCAL_API_ROLE_PASSWORD = "lambda-app-api-local-only"  # noqa: S105


def _external_url() -> str | None:
    return os.environ.get("DATABASE_URL") or None


@contextlib.contextmanager
def server_admin_url() -> Iterator[str]:
    """An admin URL (database `postgres`) on the server to use, started if embedded."""
    external = _external_url()
    if external:
        yield make_url(external).set(database="postgres").render_as_string(hide_password=False)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on import
        from lambda_app.devtools.embedded_postgres import EmbeddedPostgres

    with EmbeddedPostgres().session() as server:
        yield server.url()


def database_url(admin_url: str, name: str) -> str:
    url = make_url(admin_url).set(drivername="postgresql+asyncpg", database=name)
    return url.render_as_string(hide_password=False)


@contextlib.contextmanager
def development_database() -> Iterator[str]:
    """The URL of the development database, created if missing."""
    external = _external_url()
    if external:
        # An explicit DATABASE_URL is used as is for `make run`.
        yield external
        return
    with server_admin_url() as admin:
        asyncio.run(ensure_database(admin, DEV_DATABASE))
        yield database_url(admin, DEV_DATABASE)


def test_database_name() -> str:
    external = _external_url()
    base = make_url(external).database if external else None
    name = f"{base}_test" if base else TEST_DATABASE
    # Lets parallel runs (e.g. two checkouts) keep to their own database.
    suffix = os.environ.get("TEST_DATABASE_SUFFIX", "")
    return f"{name}{suffix}"


def api_database_url(owner_url: str) -> str:
    """The same database as the API connects to it: as its own role, not as the owner."""
    from lambda_app.workload import API_ROLE

    url = make_url(owner_url).set(username=API_ROLE, password=LOCAL_API_ROLE_PASSWORD)
    return url.render_as_string(hide_password=False)


def prepare_api_role(owner_url: str) -> str:
    """After the migrations made the API role: give it the local password; its URL."""
    from lambda_app.workload import API_ROLE

    async def set_password() -> None:
        async with plain_connection(owner_url) as conn:
            await conn.execute(f"ALTER ROLE {API_ROLE} PASSWORD '{LOCAL_API_ROLE_PASSWORD}'")

    asyncio.run(set_password())
    return api_database_url(owner_url)


@contextlib.asynccontextmanager
async def plain_connection(database_url: str) -> AsyncIterator[Any]:
    """A plain asyncpg connection to `database_url`, outside SQLAlchemy.

    For tooling: CREATE/DROP DATABASE can't run inside a transaction, and seeding
    scripts need no engine.
    """
    import asyncpg

    url = make_url(database_url)
    conn = await asyncpg.connect(
        user=url.username,
        password=url.password,
        host=url.host,
        port=url.port,
        database=url.database or "postgres",
    )
    try:
        yield conn
    finally:
        await conn.close()


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def ensure_database(admin_url: str, name: str) -> None:
    """CREATE DATABASE `name` unless it exists."""
    async with plain_connection(admin_url) as conn:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f"CREATE DATABASE {_quote_identifier(name)}")


async def drop_database(admin_url: str, name: str) -> None:
    """DROP DATABASE `name` if it exists, disconnecting whoever is still on it."""
    async with plain_connection(admin_url) as conn:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote_identifier(name)} WITH (FORCE)")
