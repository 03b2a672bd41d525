"""Which PostgreSQL `make run` and `make test` use: `DATABASE_URL` if set, else the embedded one.

The development and test databases are separate (`lambda_app` and
`lambda_app_test`), so no test can touch a developer's local data.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import warnings
from collections.abc import Iterator

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
        from lambda_app.devtools.embedded_postgres import ensure_database

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
    from lambda_app.devtools.embedded_postgres import plain_connection
    from lambda_app.workload import API_ROLE

    async def set_password() -> None:
        async with plain_connection(owner_url) as conn:
            await conn.execute(f"ALTER ROLE {API_ROLE} PASSWORD '{LOCAL_API_ROLE_PASSWORD}'")

    asyncio.run(set_password())
    return api_database_url(owner_url)
