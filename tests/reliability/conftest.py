"""Fixtures of the reliability suite: scratch databases, PgBouncer, a dedicated PostgreSQL.

Everything here commits for real (that is the point), so nothing runs in the
shared test database: each fixture makes its own database and drops it after.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.fixtures.ports import free_port
from tests.reliability.databases import create_migrated_database
from tests.reliability.pgbouncer import PgBouncer
from tests.reliability.statement_log import (
    StatementLoggedPostgres,
    start_statement_logged_postgres,
)


@pytest.fixture(scope="module")
def load_database(admin_url: str, database_url_for_tests: str) -> Iterator[str]:
    """A migrated database of its own for the load test (its row counts are exact)."""
    from lambda_app.devtools.database import drop_database

    name = f"{make_url(database_url_for_tests).database}_load"
    url = create_migrated_database(admin_url, name)
    yield url
    asyncio.run(drop_database(admin_url, name))


@pytest.fixture(scope="module")
def pgbouncer(load_database: str) -> Iterator[PgBouncer]:
    """PgBouncer, transaction pooling, at most 5 server connections, in front of it."""
    with PgBouncer.running(load_database, pool_size=5) as bouncer:
        yield bouncer


@pytest.fixture(scope="module")
def tls_pgbouncer(committing_database: str) -> Iterator[PgBouncer]:
    """PgBouncer with client TLS, as RDS Proxy has, in front of the module's database; it
    logs its clients' logins and disconnects."""
    with PgBouncer.running(
        committing_database, pool_size=2, client_tls=True, log_clients=True
    ) as bouncer:
        yield bouncer


@pytest.fixture(scope="module")
def dedicated_postgres() -> Iterator[object]:
    """A PostgreSQL server of this module's own, which the fault tests may stop and freeze.

    Never the shared server on 54329: other test runs use that one.
    """
    from lambda_app.devtools.embedded_postgres import EmbeddedPostgres

    data_root = Path(tempfile.mkdtemp(prefix="fault-pg-"))
    server = EmbeddedPostgres(data_root=data_root, port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_root, ignore_errors=True)


@pytest.fixture
def worker_logs(tmp_path: Path) -> Path:
    """A folder for the worker processes' log files (their stdout and stderr)."""
    folder = tmp_path / "worker-logs"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def committing_database(
    admin_url: str, database_url_for_tests: str, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A migrated scratch database for tests where the app must really commit.

    The shared `client` fixture joins every request to one rolled-back transaction;
    that hides behaviour that spans transactions (the login throttle writes its
    counter in a transaction of its own) and never exercises the real COMMIT.
    """
    from lambda_app.devtools.database import drop_database

    # Named after the run's test database (it carries TEST_DATABASE_SUFFIX) and the module.
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    name = f"{make_url(database_url_for_tests).database}_{module}"[:63]
    url = create_migrated_database(admin_url, name)
    yield url
    asyncio.run(drop_database(admin_url, name))


@pytest.fixture
def committing_app(committing_database: str, app, engine):  # type: ignore[no-untyped-def]
    """The app wired to `committing_database`, committing for real; restored afterwards."""
    from lambda_app.core.settings import get_settings
    from lambda_app.db.engine import build_engine, set_engine
    from lambda_app.devtools.database import prepare_api_role

    scratch = build_engine(get_settings(), database_url=prepare_api_role(committing_database))
    set_engine(scratch)
    yield app
    set_engine(engine)  # NullPool: the scratch engine holds no connection to dispose


@pytest.fixture
async def committing_client(committing_app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=committing_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture(scope="session")
def statement_logged_postgres() -> Iterator[StatementLoggedPostgres]:
    """A server of the session's own logging every statement and login (statement_log.py)."""
    yield from start_statement_logged_postgres()


@pytest.fixture(scope="session")
def logged_database(statement_logged_postgres: StatementLoggedPostgres) -> str:
    """A migrated database on that server; the URL of its owner (the migration's role)."""
    return create_migrated_database(statement_logged_postgres.admin_url(), "lambda_app_logged")


@pytest.fixture(scope="session")
def logged_api_database(logged_database: str) -> str:
    """The same database as the API connects to it: as its own role (see 0002_api_role)."""
    from lambda_app.devtools.database import prepare_api_role

    return prepare_api_role(logged_database)
