"""Database faults against a PostgreSQL server of our own: stopped, frozen, killed mid-commit.

One Lambda container (a real process running the real handler) lives through
every fault in this module: after each one the same process, with the same
handler and engine, must serve the next request normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.script import ScriptDirectory

from lambda_app.devtools.embedded_postgres import EmbeddedPostgres
from tests.fixtures.accounts import Credentials, register_and_login_via_handler
from tests.fixtures.lambda_events import http_api_event, response_json
from tests.fixtures.polling import wait_until
from tests.reliability.containers import LambdaContainer, container_environment
from tests.reliability.databases import asyncpg_dsn, create_migrated_database, execute, fetchval

pytestmark = pytest.mark.slow

# The container's configured timeouts: short, so each fault resolves quickly.
CONNECT_TIMEOUT_SECONDS = 2
COMMAND_TIMEOUT_SECONDS = 6
# The harness's bound on one invocation: far above the configured timeouts, so a
# TimeoutError here means the request hung.
HARNESS_TIMEOUT_SECONDS = 60
PASSWORD = "fault-test password"
HOLD_LOCK_KEY = 4242
DATABASE_UNAVAILABLE = {
    "error": {
        "code": "database_unavailable",
        "message": "The database is unavailable, try again shortly",
        "details": None,
    }
}

# Test-only: a deferred trigger that makes the COMMIT of a register for a `hold_*`
# username wait on an advisory lock the test holds, and for a `sleep_*` one sleep. The
# INSERT and everything else in the request's transaction is done by then, so a fault at
# that moment is a fault in the middle of a transaction that has already written.
HOLD_COMMIT_TRIGGER = f"""
CREATE FUNCTION reliability_hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.username LIKE 'hold\\_%' THEN
        PERFORM pg_advisory_xact_lock({HOLD_LOCK_KEY});
    END IF;
    IF NEW.username LIKE 'sleep\\_%' THEN
        PERFORM pg_sleep({COMMAND_TIMEOUT_SECONDS * 5});
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER reliability_hold_commit AFTER INSERT ON users
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION reliability_hold_commit();
"""


# Each fault, with a connection per request (NullPool) and with one kept (DB_POOL=single),
# each on a database of its own.
@pytest.fixture(scope="module", params=["null", "single"])
def db_pool(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def fault_database(dedicated_postgres: EmbeddedPostgres, db_pool: str) -> str:
    url = create_migrated_database(dedicated_postgres.url(), f"lambda_app_{db_pool}")
    asyncio.run(execute(url, HOLD_COMMIT_TRIGGER))
    return url


@pytest.fixture(scope="module")
def container(
    fault_database: str, db_pool: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LambdaContainer]:
    logs = tmp_path_factory.mktemp("fault-container")
    env = container_environment(
        fault_database,
        DB_CONNECT_TIMEOUT_SECONDS=str(CONNECT_TIMEOUT_SECONDS),
        DB_COMMAND_TIMEOUT_SECONDS=str(COMMAND_TIMEOUT_SECONDS),
        DB_POOL=db_pool,
    )
    lambda_container = LambdaContainer(env, logs / "container.log")
    yield lambda_container
    lambda_container.close()


@pytest.fixture
def running_database(dedicated_postgres: EmbeddedPostgres) -> Iterator[EmbeddedPostgres]:
    """The dedicated server, running before and after the test whatever the test did to it."""
    dedicated_postgres.start()
    yield dedicated_postgres
    _thaw(dedicated_postgres)
    dedicated_postgres.start()


# --- helpers ----------------------------------------------------------------------------


def _call(container: LambdaContainer, event: dict[str, Any]) -> tuple[int, Any]:
    response = container.invoke(event, timeout=HARNESS_TIMEOUT_SECONDS)
    return int(response["statusCode"]), response_json(response)


def _register(username: str) -> dict[str, Any]:
    return http_api_event(
        "POST", "/api/auth/register", json=Credentials(username, PASSWORD).registration()
    )


def _register_and_login(container: LambdaContainer, username: str) -> str:
    """A token for a new user (the password is `PASSWORD`, which must never be logged)."""
    credentials = Credentials(username, PASSWORD)
    return register_and_login_via_handler(container, credentials=credentials).token


def _assert_serves_normally(container: LambdaContainer, token: str, pid: int) -> None:
    status, body = _call(container, http_api_event("GET", "/api/users/me", token=token))
    assert status == 200, body
    assert _call(container, http_api_event("GET", "/api/health/ready"))[0] == 200
    assert container.is_alive() and container.pid == pid  # never restarted
    _assert_no_secret_logged(container)


def _postmaster_pid(server: EmbeddedPostgres) -> int:
    return int((server.pgdata / "postmaster.pid").read_text().splitlines()[0])


def _server_processes(postmaster: int) -> list[int]:
    """The postmaster and its children: the backends, a kept connection's among them."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")"
            if int(stat.read_text().rpartition(")")[2].split()[1]) == postmaster:
                children.append(int(stat.parent.name))
    return [postmaster, *children]


def _freeze(server: EmbeddedPostgres) -> None:
    """The whole server stops answering: new connections and open ones alike."""
    for pid in _server_processes(_postmaster_pid(server)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)


def _thaw(server: EmbeddedPostgres) -> None:
    pid_file = server.pgdata / "postmaster.pid"
    if pid_file.exists():
        for pid in _server_processes(int(pid_file.read_text().splitlines()[0])):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


async def _wait_for_waiting_backend(url: str, lock: str, *, wait_type: str = "Lock") -> int:
    """The pid of the backend waiting on a lock of type `lock` (the request's backend), or
    on another wait event of `wait_type`."""
    waiting: list[int] = []
    conn = await asyncpg.connect(**asyncpg_dsn(url))  # type: ignore[arg-type]

    async def found() -> bool:
        pid = await conn.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = $2 "
            "AND wait_event = $1 AND datname = current_database()",
            lock,
            wait_type,
        )
        if pid is not None:
            waiting.append(int(pid))
        return pid is not None

    try:
        await wait_until(found, lambda: "the request never reached the lock", within=30)
    finally:
        await conn.close()
    return waiting[0]


async def _wait_for_held_commit(url: str, *, sleeping: bool = False) -> tuple[int, bool]:
    """(pid, has written) of the backend whose COMMIT waits on the test's advisory lock (or,
    `sleeping`, sleeps in the trigger)."""
    if sleeping:
        pid = await _wait_for_waiting_backend(url, "PgSleep", wait_type="Timeout")
    else:
        pid = await _wait_for_waiting_backend(url, "advisory")
    conn = await asyncpg.connect(**asyncpg_dsn(url))  # type: ignore[arg-type]
    try:
        has_written = await conn.fetchval(
            "SELECT backend_xid IS NOT NULL FROM pg_stat_activity WHERE pid = $1", pid
        )
    finally:
        await conn.close()
    return pid, bool(has_written)


class _Holding:
    """Holds a lock from a connection of its own until the block ends (or a fault kills it)."""

    def __init__(self, url: str, sql: str) -> None:
        self.url = url
        self.sql = sql
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection | None = None

    def __enter__(self) -> _Holding:
        self.conn = self.loop.run_until_complete(asyncpg.connect(**asyncpg_dsn(self.url)))  # type: ignore[arg-type]
        self.loop.run_until_complete(self.conn.execute(self.sql))
        return self

    def __exit__(self, *_: object) -> None:
        try:
            if self.conn is not None and not self.conn.is_closed():
                self.loop.run_until_complete(self.conn.close(timeout=5))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            pass  # the fault under test may have killed this connection too
        self.loop.close()


def _held_commit(url: str) -> _Holding:
    """The advisory lock the test trigger makes `hold_*` registrations wait on at COMMIT."""
    return _Holding(url, f"SELECT pg_advisory_lock({HOLD_LOCK_KEY})")


def _assert_no_secret_logged(container: LambdaContainer) -> None:
    log = container.log_text()
    assert "$argon2" not in log, "a password hash reached the log"
    assert PASSWORD not in log, "a password reached the log"


def _user_count(url: str, username: str) -> int:
    return int(
        asyncio.run(fetchval(url, "SELECT count(*) FROM users WHERE username = $1", username))
    )


# --- tests ------------------------------------------------------------------------------


def test_stopping_the_database_mid_run_answers_503_then_recovers(
    container: LambdaContainer, running_database: EmbeddedPostgres
) -> None:
    # given: a warm container serving a user
    token = _register_and_login(container, "stop_mid_run")

    # when: the database stops while the container is serving a stream of requests
    stopper = threading.Timer(0.2, running_database.stop)
    statuses: list[int] = []
    try:
        for _ in range(1000):  # bounded; ends at the third 503 in a row
            status, body = _call(container, http_api_event("GET", "/api/users/me", token=token))
            statuses.append(status)
            assert status in (200, 503), (status, body)
            if status == 503:
                assert body == DATABASE_UNAVAILABLE
            if statuses == [200]:
                stopper.start()  # the stream is flowing: pull the plug under it
            if statuses[-3:] == [503, 503, 503]:
                break
    finally:
        if stopper.ident is not None:  # started
            stopper.join()
    assert statuses[0] == 200 and statuses[-3:] == [503, 503, 503], statuses

    # then: every kind of request answers 503 with the standard body, none hangs
    for event in (
        http_api_event("GET", "/api/health/ready"),
        _register("stop_mid_run_2"),
        http_api_event(
            "POST", "/api/auth/token", form={"username": "stop_mid_run", "password": PASSWORD}
        ),
        http_api_event("PATCH", "/api/users/me", json={"first_name": "X"}, token=token),
    ):
        status, body = _call(container, event)
        assert (status, body) == (503, DATABASE_UNAVAILABLE), event["rawPath"]
    # liveness does not depend on the database
    assert _call(container, http_api_event("GET", "/api/health")) == (200, {"status": "ok"})

    # when: the database comes back; then: the same container serves normally again
    running_database.start()
    _assert_serves_normally(container, token, container.pid)


def test_a_frozen_database_answers_503_within_the_connect_timeout(
    container: LambdaContainer, running_database: EmbeddedPostgres
) -> None:
    token = _register_and_login(container, "frozen_db")

    # when: the server accepts TCP connections but never answers (SIGSTOP), nor do its
    # backends (a kept connection's, with DB_POOL=single)
    _freeze(running_database)
    try:
        status, body = _call(container, http_api_event("GET", "/api/users/me", token=token))
        ready_status, _ = _call(container, http_api_event("GET", "/api/health/ready"))
    finally:
        _thaw(running_database)

    # then: the connect timeout (or, on a kept connection, the command timeout) turned
    # the hang into a 503
    assert (status, body) == (503, DATABASE_UNAVAILABLE)
    assert ready_status == 503
    _assert_serves_normally(container, token, container.pid)


def test_a_commit_that_hits_the_command_timeout_answers_503_and_writes_nothing(
    container: LambdaContainer, running_database: EmbeddedPostgres, fault_database: str
) -> None:
    token = _register_and_login(container, "timeout_owner")
    with _held_commit(fault_database):
        # when: the COMMIT waits longer than the command timeout
        status, body = _call(container, _register("hold_timeout"))
    # then
    assert (status, body) == (503, DATABASE_UNAVAILABLE)
    assert _user_count(fault_database, "hold_timeout") == 0
    _assert_serves_normally(container, token, container.pid)


def test_an_insert_killed_mid_statement_answers_503_and_logs_no_secret(
    container: LambdaContainer, running_database: EmbeddedPostgres, fault_database: str
) -> None:
    token = _register_and_login(container, "lock_owner")
    with _Holding(fault_database, "BEGIN; LOCK TABLE users IN SHARE MODE"):
        container.send(_register("locked_out"))
        pid = asyncio.run(_wait_for_waiting_backend(fault_database, "relation"))
        # when: the connection dies while its INSERT (carrying a password hash) runs
        asyncio.run(execute(fault_database, f"SELECT pg_terminate_backend({pid})"))
        response = container.wait_response(timeout=HARNESS_TIMEOUT_SECONDS)
    # then: a 503, nothing written, and the failed statement's parameters (the new
    # user's password hash) are not in the logged traceback
    assert (response["statusCode"], response_json(response)) == (503, DATABASE_UNAVAILABLE)
    assert _user_count(fault_database, "locked_out") == 0
    _assert_no_secret_logged(container)
    _assert_serves_normally(container, token, container.pid)


def test_a_connection_killed_mid_transaction_leaves_no_partial_write(
    container: LambdaContainer, running_database: EmbeddedPostgres, fault_database: str
) -> None:
    token = _register_and_login(container, "kill_owner")
    with _held_commit(fault_database):
        container.send(_register("hold_killed"))
        pid, has_written = asyncio.run(_wait_for_held_commit(fault_database))
        assert has_written  # the INSERT is done: the transaction holds a write
        # when: the request's connection is terminated before its COMMIT completes
        asyncio.run(execute(fault_database, f"SELECT pg_terminate_backend({pid})"))
        response = container.wait_response(timeout=HARNESS_TIMEOUT_SECONDS)
    # then
    assert (response["statusCode"], response_json(response)) == (503, DATABASE_UNAVAILABLE)
    assert _user_count(fault_database, "hold_killed") == 0
    _assert_serves_normally(container, token, container.pid)


def test_the_database_stopping_mid_transaction_leaves_no_partial_write(
    container: LambdaContainer, running_database: EmbeddedPostgres, fault_database: str
) -> None:
    token = _register_and_login(container, "stop_owner")
    # The COMMIT sleeps rather than waiting on the test's lock: shutting down kills the
    # lock's holder too, and when it died first the COMMIT completed and answered 201 (seen
    # with DB_POOL=single, whose request runs on a backend older than the holder's).
    container.send(_register("sleep_stopped"))
    _, has_written = asyncio.run(_wait_for_held_commit(fault_database, sleeping=True))
    assert has_written
    # when: the whole server shuts down while the COMMIT is pending
    running_database.stop()
    response = container.wait_response(timeout=HARNESS_TIMEOUT_SECONDS)
    assert (response["statusCode"], response_json(response)) == (503, DATABASE_UNAVAILABLE)

    # then: after the restart the row is not there, and the container carries on
    running_database.start()
    assert _user_count(fault_database, "sleep_stopped") == 0
    _assert_serves_normally(container, token, container.pid)
    status, _ = _call(container, _register("after_restart"))
    assert status == 201


# --- a migration that fails halfway ---------------------------------------------------------

GOOD_REVISION = """\
    \"\"\"test only: a good revision\"\"\"
    import sqlalchemy as sa
    from alembic import op

    revision = "rel_9101"
    down_revision = {down!r}
    branch_labels = None
    depends_on = None


    def upgrade() -> None:
        op.create_table("reliability_good", sa.Column("id", sa.Integer(), primary_key=True))


    def downgrade() -> None:
        op.drop_table("reliability_good")
"""
FAILING_REVISION = """\
    \"\"\"test only: changes the schema and data, then fails inside the database\"\"\"
    import sqlalchemy as sa
    from alembic import op

    revision = "rel_9102"
    down_revision = "rel_9101"
    branch_labels = None
    depends_on = None


    def upgrade() -> None:
        op.create_table("reliability_partial", sa.Column("id", sa.Integer(), primary_key=True))
        op.add_column("users", sa.Column("reliability_extra", sa.Integer()))
        op.execute("UPDATE users SET first_name = 'overwritten'")
        op.execute("SELECT 1 / 0")


    def downgrade() -> None:
        pass
"""


def test_a_migration_failing_halfway_leaves_the_previous_revision_intact(
    running_database: EmbeddedPostgres, tmp_path: Path
) -> None:
    from alembic.config import Config

    from lambda_app.core.settings import get_settings
    from lambda_app.db.engine import build_engine
    from lambda_app.migrate.runner import migrate, migration_settings, migrations_dir

    # given: a database at the real head, with a user in it, and two more revisions
    url = create_migrated_database(running_database.url(), "migration_fault")
    asyncio.run(
        execute(
            url,
            "INSERT INTO users (username, slug, email, hashed_password, "
            "first_name) VALUES ('keep', 'keep', 'keep@example.com', 'x', 'Kept')",
        )
    )
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    config.set_main_option(
        "version_locations", os.pathsep.join([str(migrations_dir() / "versions"), str(tmp_path)])
    )
    real_head = ScriptDirectory.from_config(config).get_heads()
    assert len(real_head) == 1
    (tmp_path / "rel_9101_good.py").write_text(
        textwrap.dedent(GOOD_REVISION).format(down=real_head[0])
    )
    (tmp_path / "rel_9102_failing.py").write_text(textwrap.dedent(FAILING_REVISION))

    # when: the upgrade runs through the same code path as the migration Lambda
    async def upgrade() -> None:
        engine = build_engine(migration_settings(get_settings()), database_url=url)
        try:
            await migrate(engine, "upgrade", "head", config=config)
        finally:
            await engine.dispose()

    with pytest.raises(Exception, match="division by zero"):
        asyncio.run(upgrade())

    # then: the good revision is applied and recorded; nothing of the failing one is left
    assert asyncio.run(fetchval(url, "SELECT version_num FROM alembic_version")) == "rel_9101"
    assert asyncio.run(fetchval(url, "SELECT to_regclass('reliability_good') IS NOT NULL"))
    assert asyncio.run(fetchval(url, "SELECT to_regclass('reliability_partial') IS NULL"))
    assert not asyncio.run(
        fetchval(
            url,
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'users' AND column_name = 'reliability_extra'",
        )
    )
    assert (
        asyncio.run(fetchval(url, "SELECT first_name FROM users WHERE username = 'keep'")) == "Kept"
    )
