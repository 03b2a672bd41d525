"""Test plumbing: a real PostgreSQL, the schema built by the migrations, one rolled-back
transaction per test (the code under test still commits: savepoint join mode)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from lambda_app.devtools.database import database_url, server_admin_url, test_database_name

pytest_plugins = ["tests.fixtures.factories"]


@pytest.fixture(scope="session")
def admin_url() -> Iterator[str]:
    """Admin URL of the server under test: `DATABASE_URL`'s, or the embedded one (started here)."""
    with server_admin_url() as url:
        yield url


@pytest.fixture(scope="session")
def database_url_for_tests(admin_url: str) -> Iterator[str]:
    """A fresh test database, migrated to head (never the development database); the URL
    of its owner, as the migrations connect. The app connects as the API role."""
    from lambda_app.devtools.database import drop_database, ensure_database
    from lambda_app.migrate.runner import upgrade_to_head

    name = test_database_name()
    asyncio.run(drop_database(admin_url, name))
    asyncio.run(ensure_database(admin_url, name))
    url = database_url(admin_url, name)
    upgrade_to_head(url)
    yield url


@pytest.fixture(scope="session")
def api_database_url_for_tests(database_url_for_tests: str) -> str:
    """The test database as the API sees it: its own least-privilege role."""
    from lambda_app.devtools.database import prepare_api_role

    return prepare_api_role(database_url_for_tests)


@pytest.fixture(scope="session", autouse=True)
def _test_settings(
    api_database_url_for_tests: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    from lambda_app.core.settings import get_settings
    from lambda_app.identity import signing_key
    from lambda_app.migrate.settings import get_migration_settings

    saved = dict(os.environ)
    os.environ.update(
        {
            "DATABASE_URL": api_database_url_for_tests,
            "ENVIRONMENT": "local",
            "JWT_SECRET": "test-secret-that-is-long-enough-0123456789",
            "LOG_LEVEL": "INFO",
            # The mail the app sends (the file backend): out of the developer's .local/mail.
            "MAIL_DIR": str(tmp_path_factory.mktemp("mail")),
            # No padding of password-recovery answers, but in the test that checks it.
            "PASSWORD_RECOVERY_MIN_SECONDS": "0",
        }
    )
    for name in ("FIRST_SUPERUSER_USERNAME", "FIRST_SUPERUSER_EMAIL", "FIRST_SUPERUSER_PASSWORD"):
        os.environ.pop(name, None)
    get_settings.cache_clear()
    get_migration_settings.cache_clear()
    signing_key.clear_cache()
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
async def engine(_test_settings: None) -> AsyncIterator[AsyncEngine]:
    from lambda_app.core.settings import get_settings
    from lambda_app.db.engine import build_engine, set_engine

    engine = build_engine(get_settings())
    set_engine(engine)
    yield engine
    set_engine(None)
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        outer = await conn.begin()
        yield conn
        if outer.is_active:
            await outer.rollback()


@pytest.fixture
async def session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    """A session inside the test's outer transaction; the app's sessions join it too."""
    from lambda_app.db.session import set_sessionmaker

    maker = async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    set_sessionmaker(maker)
    async with maker() as session:
        yield session
    set_sessionmaker(None)


@pytest.fixture(scope="session")
def app(_test_settings: None):  # type: ignore[no-untyped-def]
    from lambda_app.main import create_app

    return create_app()


@pytest.fixture
async def client(app, session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
def emf_lines() -> Iterator[list[str]]:
    """Every EMF line the app writes during the test (instead of stdout)."""
    from lambda_app.core import metrics

    lines: list[str] = []
    metrics.set_writer(lines.append)
    yield lines
    metrics.set_writer(None)


@pytest.fixture
def user_tls_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME of the test's own and no PGSSL* variables: the only TLS files asyncpg may read
    (~/.postgresql/root.crt and the like) are the ones the test puts there."""
    from lambda_app.db.tls import TLS_FILE_VARIABLES

    monkeypatch.setenv("HOME", str(tmp_path))
    for name in TLS_FILE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return tmp_path
