"""DB_POOL=single: one connection kept per container, and never carried through a snapshot.

With SnapStart, whatever init leaves open is in the snapshot, and every container restored
from it would share one socket to the proxy. The before-snapshot hook closes the kept
connection; the after-restore hook drops whatever a restored container inherited.
(The load test and the database-fault tests run with both pools as well.)
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from lambda_app.core.settings import ApiSettings
from lambda_app.db.engine import build_engine, set_engine
from lambda_app.devtools.embedded_postgres import EmbeddedPostgres
from tests.fixtures.accounts import Credentials, register_and_login_via_handler
from tests.fixtures.lambda_events import http_api_event
from tests.fixtures.polling import count_backends, wait_until
from tests.fixtures.snapstart import run_after_restore_hooks, run_before_snapshot_hooks
from tests.reliability.containers import LambdaContainer, container_environment
from tests.reliability.databases import asyncpg_dsn, create_migrated_database

APPLICATION_NAME = "lambda_app.kept_connection_test"
# Far beyond the pre-ping's own bound: a request still waiting after this has hung.
HUNG_SECONDS = 60
PASSWORD = "kept-connection password"


@pytest.fixture(scope="module")
def api_database(committing_database: str) -> str:
    """The same database as the API connects to it: as its own role."""
    from lambda_app.devtools.database import prepare_api_role

    return prepare_api_role(committing_database)


@pytest.fixture
async def kept_engine(engine: AsyncEngine, api_database: str) -> AsyncIterator[AsyncEngine]:
    """The process's engine, keeping one connection; the session's engine restored after."""
    settings = ApiSettings(db_application_name=APPLICATION_NAME)
    kept = build_engine(settings, database_url=api_database, pool="single")
    set_engine(kept)
    try:
        yield kept
    finally:
        set_engine(engine)
        await kept.dispose()


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT pg_backend_pid()")))


async def test_the_kept_connection_is_closed_before_a_snapshot(
    kept_engine: AsyncEngine, committing_database: str
) -> None:
    # given: a connection kept between requests (init may warm the function up)
    kept = await _backend_pid(kept_engine)
    assert await _backend_pid(kept_engine) == kept

    # when: Lambda runs the before-snapshot hooks (last registered first)
    run_before_snapshot_hooks()

    # then: the server sees it gone, and the next request opens a connection of its own
    async def closed() -> bool:
        return await count_backends(committing_database, pid=kept) == 0

    await wait_until(closed, lambda: f"backend {kept} still connected after the hook")
    assert await _backend_pid(kept_engine) != kept


def test_no_socket_of_the_kept_connection_is_left_open_for_the_snapshot(
    engine: AsyncEngine, api_database: str
) -> None:
    # Lambda's runtime runs the before-snapshot hooks between invocations, from its own
    # thread: the container's event loop is idle then, not running. Here in a thread of the
    # test's own, away from the loop pytest-asyncio runs.
    def snapshot_of_a_container() -> list[str]:
        # given: a connection kept by a request on the container's loop (current, as the
        # API handler makes it), which has returned
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        settings = ApiSettings(db_application_name=APPLICATION_NAME)
        kept = build_engine(settings, database_url=api_database, pool="single")
        set_engine(kept)
        try:
            port = loop.run_until_complete(_client_port(kept))
            assert _sockets_on(port) == ["ESTABLISHED"]

            # when: Lambda runs the before-snapshot hooks
            run_before_snapshot_hooks()

            # then (below): what the process still holds is what the snapshot would hold
            return _sockets_on(port)
        finally:
            set_engine(engine)
            loop.run_until_complete(kept.dispose())
            loop.close()

    with ThreadPoolExecutor(max_workers=1) as thread:
        left_open = thread.submit(snapshot_of_a_container).result()
    assert left_open == []


async def _client_port(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT inet_client_port()")))


def _sockets_on(local_port: int) -> list[str]:
    """The states of this process's TCP sockets on `local_port` (an open file each)."""
    return [
        connection.status
        for connection in psutil.Process().net_connections("tcp")
        if connection.laddr and connection.laddr.port == local_port
    ]


async def test_a_restored_container_never_uses_a_connection_from_the_snapshot(
    kept_engine: AsyncEngine, committing_database: str
) -> None:
    # given: a connection kept when the memory was snapshotted (no before-snapshot hook ran)
    inherited = await _backend_pid(kept_engine)

    # when: the container is restored
    run_after_restore_hooks()

    # then: its first request dials anew; the inherited socket is closed, not reused
    assert await _backend_pid(kept_engine) != inherited

    async def closed() -> bool:
        return await count_backends(committing_database, pid=inherited) == 0

    await wait_until(closed, lambda: f"backend {inherited} still connected after restore")


@pytest.fixture(scope="module")
def own_server_api_database(dedicated_postgres: EmbeddedPostgres) -> str:
    """A database on a server of the module's own: the test stops one of its backends."""
    from lambda_app.devtools.database import prepare_api_role

    return prepare_api_role(create_migrated_database(dedicated_postgres.url(), "lambda_app"))


async def test_a_kept_connection_that_stops_answering_is_replaced_by_the_pre_ping(
    own_server_api_database: str,
) -> None:
    # given: a kept connection, and a command timeout far beyond the test's patience
    settings = ApiSettings(
        db_application_name=APPLICATION_NAME, db_command_timeout_seconds=HUNG_SECONDS * 5
    )
    kept_engine = build_engine(settings, database_url=own_server_api_database, pool="single")
    silent = await _backend_pid(kept_engine)

    # when: its server side goes silent, the socket still open (a flow dropped without a
    # word: no reset ever arrives)
    os.kill(silent, signal.SIGSTOP)
    try:
        # a TimeoutError here: the pre-ping waited for the command timeout
        replacement = await asyncio.wait_for(_backend_pid(kept_engine), HUNG_SECONDS)
    finally:
        os.kill(silent, signal.SIGCONT)
        await kept_engine.dispose()

    # then: the pre-ping gave up on it well before the command timeout, and the request
    # ran on a new connection instead of failing
    assert replacement != silent


@pytest.fixture
def kept_container(api_database: str, tmp_path: Path) -> Iterator[LambdaContainer]:
    env = container_environment(api_database, DB_POOL="single")
    container = LambdaContainer(env, tmp_path / "container.log")
    yield container
    container.close()


def test_a_failed_login_writes_its_counter_beside_the_kept_connection(
    kept_container: LambdaContainer, committing_database: str
) -> None:
    # given: a user, in a container keeping one connection
    credentials = Credentials("kept_login", PASSWORD)
    register_and_login_via_handler(kept_container, credentials=credentials)

    # when: a wrong password (the counter commits in a transaction of its own, while the
    # request's session holds the kept connection)
    wrong = http_api_event(
        "POST", "/api/auth/token", form={"username": "kept_login", "password": "wrong password"}
    )
    response = kept_container.invoke(wrong)

    # then: a 401, and the guess is counted in the database, on each of its counters
    # (the login name's and the account's)
    assert response["statusCode"] == 401
    assert asyncio.run(_failures(committing_database)) == 2


async def _failures(database_url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(**asyncpg_dsn(database_url))  # type: ignore[arg-type]
    try:
        return int(await conn.fetchval("SELECT coalesce(sum(failures), 0) FROM login_throttle"))
    finally:
        await conn.close()
