"""The migration Lambda against a real PostgreSQL: a fresh database per test."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.config import Config
from sqlalchemy.engine import make_url

from lambda_app.core.settings import get_settings
from lambda_app.db.engine import build_engine
from lambda_app.devtools.database import database_url, drop_database, ensure_database
from lambda_app.handlers.migrate import MigrationFailed, handler, run_migration_event
from lambda_app.migrate.deadline import (
    MIGRATION_FUNCTION_TIMEOUT_SECONDS,
    REPORTING_MARGIN_SECONDS,
    SERVER_LEAD_SECONDS,
    Deadline,
    MigrationDeadlineExceeded,
)
from lambda_app.migrate.lock import (
    DDL_LOCK_TIMEOUT_ATTRIBUTE,
    DDL_LOCK_TIMEOUT_SECONDS,
    MIGRATION_LOCK_KEY,
)
from lambda_app.migrate.runner import alembic_config, migrate, migrations_dir
from lambda_app.migrate.settings import get_migration_settings, migration_settings
from lambda_app.migrate.timeouts import CLIENT_CHECK_INTERVAL_SECONDS, IDLE_IN_TRANSACTION_SECONDS
from tests.fixtures.lambda_context import FakeLambdaContext
from tests.fixtures.polling import wait_until
from tests.migrations.scripts import real_head, real_revisions, with_failing_revisions

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BOUND_SECONDS = 60  # upper bound for waits in this file (never reached when things work)


# --- helpers -------------------------------------------------------------------------


def invocation(*, timeout_seconds: float = MIGRATION_FUNCTION_TIMEOUT_SECONDS) -> FakeLambdaContext:
    """A fresh invocation of the migration function: its clock starts now."""
    return FakeLambdaContext(
        function_name="migrations",
        aws_request_id="test-request-id",
        timeout_seconds=timeout_seconds,
    )


LOCKING_REVISIONS = Path(__file__).resolve().parents[1] / "migrations" / "locking"
HEAD = real_head()


def plain_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(plain_dsn(url))
        try:
            return await connection.fetch(sql, *args)
        finally:
            await connection.close()

    return asyncio.run(run())


def tables(url: str) -> set[str]:
    rows = fetch(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row["tablename"] for row in rows}


def versions(url: str) -> list[str]:
    if "alembic_version" not in tables(url):
        return []
    return [row["version_num"] for row in fetch(url, "SELECT version_num FROM alembic_version")]


# The runs waiting for the migration lock: they try for it again and again (migrate.lock),
# so each one's connection shows the attempt as its last statement.
LOCK_WAITERS_SQL = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND query LIKE 'SELECT pg_try_advisory_lock(%'
"""


class Env:
    """Points the app's settings at one database for a test; restores everything after."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._saved = dict(os.environ)

    def set(self, **values: str) -> None:
        os.environ.update(values)
        get_settings.cache_clear()
        get_migration_settings.cache_clear()

    def restore(self) -> None:
        os.environ.clear()
        os.environ.update(self._saved)
        get_settings.cache_clear()
        get_migration_settings.cache_clear()


@pytest.fixture
def fresh_db(admin_url: str) -> Iterator[Env]:
    """A brand-new empty database, set as DATABASE_URL for the code under test."""
    suffix = os.environ.get("TEST_DATABASE_SUFFIX", "")
    name = f"lambda_app_migrate_{uuid.uuid4().hex[:10]}{suffix}"
    asyncio.run(ensure_database(admin_url, name))
    env = Env(database_url(admin_url, name))
    env.set(DATABASE_URL=env.url)
    try:
        yield env
    finally:
        env.restore()
        asyncio.run(drop_database(admin_url, name))


@pytest.fixture
def migrate_log() -> Iterator[list[logging.LogRecord]]:
    """Records of the migration logger (on the logger itself: the handler replaces the
    root logger's handlers, caplog's included, the first time it configures logging)."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    collector = Collect(level=logging.INFO)
    logger = logging.getLogger("lambda_app.migrate")
    logger.addHandler(collector)
    try:
        yield records
    finally:
        logger.removeHandler(collector)


def logged_fields(records: list[logging.LogRecord], message: str) -> list[dict[str, Any]]:
    return [r.fields for r in records if r.getMessage() == message]  # type: ignore[attr-defined]


# --- upgrade ---------------------------------------------------------------------------


def test_upgrade_takes_a_fresh_database_to_head(fresh_db: Env) -> None:
    # when
    result = handler({}, invocation())

    # then
    assert result["ok"] is True
    assert result["action"] == "upgrade"
    assert result["from_revision"] is None
    assert result["to_revision"] == HEAD
    assert result["head"] == HEAD
    assert result["applied"] == real_revisions()
    assert isinstance(result["duration_ms"], int) and result["duration_ms"] >= 0
    assert result["superuser"] is None  # none configured
    assert json.loads(json.dumps(result)) == result  # JSON-able as Lambda returns it
    assert versions(fresh_db.url) == [HEAD]
    assert {"users", "login_throttle"} <= tables(fresh_db.url)


def test_no_connection_outlives_the_invocation(fresh_db: Env) -> None:
    handler({"action": "upgrade"}, invocation())

    # The handler has closed its connections; each server backend then exits on its own
    # time (a busy machine lags), and a leaked connection never would.
    name = make_url(fresh_db.url).database

    async def lingering() -> int:
        connection = await asyncpg.connect(plain_dsn(fresh_db.url))
        try:
            return int(
                await connection.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid()",
                    name,
                )
            )
        finally:
            await connection.close()

    async def none_left() -> bool:
        return await lingering() == 0

    asyncio.run(wait_until(none_left, lambda: "a connection outlived the invocation"))


def test_a_second_upgrade_is_a_no_op(fresh_db: Env) -> None:
    handler({}, invocation())

    result = handler({"action": "upgrade", "revision": "head"}, invocation())

    assert result["ok"] is True
    assert result["applied"] == []
    assert result["from_revision"] == result["to_revision"] == HEAD
    assert versions(fresh_db.url) == [HEAD]


def test_concurrent_runs_are_serialized_by_the_advisory_lock(fresh_db: Env) -> None:
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def invoke() -> None:
        try:
            results.append(handler({"action": "upgrade"}, invocation()))
        except BaseException as exc:
            errors.append(exc)

    async def scenario() -> None:
        # given: the lock is taken, so both invocations must queue behind it
        holder = await asyncpg.connect(plain_dsn(fresh_db.url))
        try:
            await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
            threads = [threading.Thread(target=invoke) for _ in range(2)]
            for thread in threads:
                thread.start()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + BOUND_SECONDS
            while await holder.fetchval(LOCK_WAITERS_SQL) < 2:
                assert loop.time() < deadline, "both runs should be waiting for the lock"
                await asyncio.sleep(0.05)
            # nothing may have been applied while they wait
            assert not await holder.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
            # when: the lock is released
            await holder.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
            for thread in threads:
                await asyncio.to_thread(thread.join, BOUND_SECONDS)
        finally:
            await holder.close()

    asyncio.run(scenario())

    # then: both succeed, one applied everything, the other found nothing to do
    assert errors == []
    assert [r["ok"] for r in results] == [True, True]
    assert sorted((r["applied"] for r in results), key=len) == [[], real_revisions()]
    assert all(r["to_revision"] == HEAD for r in results)
    assert versions(fresh_db.url) == [HEAD]


def run_while_another_run_holds_the_lock(url: str, event: dict[str, Any], context: Any) -> str:
    """The handler's failure while the migration lock is held elsewhere (and no waiter is
    left once it has failed)."""

    async def scenario() -> str:
        holder = await asyncpg.connect(plain_dsn(url))
        try:
            await holder.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
            with pytest.raises(MigrationFailed, match="still holds the migration lock") as raised:
                await asyncio.to_thread(handler, event, context)

            async def no_waiter_left() -> bool:  # its backend exits just after the close
                return bool(await holder.fetchval(LOCK_WAITERS_SQL) == 0)

            await wait_until(no_waiter_left, lambda: "a lock waiter outlived its failed run")
            return str(raised.value)
        finally:
            await holder.close()

    return asyncio.run(scenario())


def test_a_shorter_lock_wait_asked_for_is_the_one_waited(fresh_db: Env) -> None:
    event = {"action": "upgrade", "lock_timeout_seconds": 0.2}

    message = run_while_another_run_holds_the_lock(fresh_db.url, event, invocation())

    assert "after 0.2 s;" in message
    assert versions(fresh_db.url) == []


def test_by_default_a_lock_waiter_waits_as_long_as_its_invocation_allows(fresh_db: Env) -> None:
    # given: an invocation with little time left beyond the margin it keeps to report
    context = invocation(timeout_seconds=REPORTING_MARGIN_SECONDS + SERVER_LEAD_SECONDS + 1)

    # when: another run holds the lock for longer
    message = run_while_another_run_holds_the_lock(fresh_db.url, {"action": "upgrade"}, context)

    # then: it waited until its own time ran out, not for a fixed time, and failed cleanly
    assert "all the time this run had" in message
    assert versions(fresh_db.url) == []


# --- a failing migration -------------------------------------------------------------------


def test_a_failing_migration_leaves_the_previous_revision_and_nothing_half_applied(
    fresh_db: Env, migrate_log: list[logging.LogRecord]
) -> None:
    # given: the real revisions, then 9001 (fine), then 9002 (creates a table, then fails)
    config = with_failing_revisions()

    # when
    with pytest.raises(MigrationFailed, match="division by zero"):
        run_migration_event({"action": "upgrade"}, config=config, request_id="test-request-id")

    # then: every revision before the failing one is committed ...
    assert versions(fresh_db.url) == ["9001"]
    assert {"users", "login_throttle", "release_notes"} <= tables(fresh_db.url)
    # ... and nothing of the failing one is left
    assert "half_applied" not in tables(fresh_db.url)
    # one error line, with the cause, the request id and no SQL parameters
    [fields] = logged_fields(migrate_log, "migration failed")
    assert fields["request_id"] == "test-request-id"
    assert fields["action"] == "upgrade"
    assert fields["error"] == "DivisionByZeroError: division by zero"
    assert "9002_half_applied.py" in fields["traceback"]  # where, in our code
    assert "site-packages" not in fields["traceback"]


def test_after_a_failed_run_a_downgrade_undoes_the_revisions_that_did_apply(
    fresh_db: Env,
) -> None:
    config = with_failing_revisions()
    with pytest.raises(MigrationFailed):
        run_migration_event({}, config=config)

    result = run_migration_event({"action": "downgrade", "revision": HEAD}, config=config)

    assert result["applied"] == ["9001"]
    assert versions(fresh_db.url) == [HEAD]
    assert "release_notes" not in tables(fresh_db.url)


# --- the deadline ------------------------------------------------------------------------

DEADLINE_REVISION = """\
\"\"\"test only: {doc}

Revision ID: 9301
Revises: the real head
\"\"\"

import sqlalchemy as sa
from alembic import op
from sqlalchemy.util import await_

revision = "9301"
down_revision = {head!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
{body}


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS deadline_probe")
"""
SLEEP_SQL = "SELECT pg_sleep(600)"  # far past any budget below
# A session still running the statement, or still in its (aborted) transaction.
LEFTOVER_SQL = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND state <> 'idle' AND strpos(query, $1) > 0
"""


def with_revision(tmp_path: Path, doc: str, body: str) -> Config:
    """The real scripts, then revision 9301 (on the real head) running `body`."""
    code = DEADLINE_REVISION.format(doc=doc, head=HEAD, body=textwrap.indent(body, "    "))
    (tmp_path / "9301_deadline.py").write_text(code)
    config = alembic_config()
    config.set_main_option("path_separator", "os")
    locations = [migrations_dir() / "versions", tmp_path]
    config.set_main_option("version_locations", os.pathsep.join(map(str, locations)))
    return config


def little_time() -> Deadline:
    """An invocation's deadline with about a second left for PostgreSQL's bounds."""
    context = invocation(timeout_seconds=REPORTING_MARGIN_SECONDS + SERVER_LEAD_SECONDS + 1)
    return Deadline.for_invocation(context)


def assert_nothing_left_of_the_run(url: str) -> None:
    """No trace of revision 9301: not its version, not its table, not its statement."""
    assert versions(url) == [HEAD]
    assert "deadline_probe" not in tables(url)

    async def no_statement_left() -> bool:
        connection = await asyncpg.connect(plain_dsn(url))
        try:
            running = await connection.fetchval(LEFTOVER_SQL, SLEEP_SQL)
        finally:
            await connection.close()
        return int(running) == 0

    asyncio.run(wait_until(no_statement_left, lambda: "the run's statement still runs"))


def test_a_statement_running_into_the_deadline_is_stopped_by_the_server_and_rolled_back(
    fresh_db: Env, tmp_path: Path, migrate_log: list[logging.LogRecord]
) -> None:
    # given: the database at head, and a revision that would outlast the invocation
    run_migration_event({}, config=alembic_config())
    body = f"""\
op.create_table("deadline_probe", sa.Column("id", sa.Integer(), primary_key=True))
op.execute({SLEEP_SQL!r})"""
    config = with_revision(tmp_path, "a statement longer than any budget", body)

    # when
    with pytest.raises(MigrationFailed, match="reached its deadline") as raised:
        run_migration_event({}, config=config, request_id="r-1", deadline=little_time())

    # then: PostgreSQL cancelled it (statement_timeout), and the revision rolled back
    server_error = raised.value.__cause__.__cause__  # type: ignore[union-attr]
    assert getattr(getattr(server_error, "orig", None), "sqlstate", None) == "57014"
    assert_nothing_left_of_the_run(fresh_db.url)
    [fields] = logged_fields(migrate_log, "migration failed")
    assert fields["error_type"] == "MigrationDeadlineExceeded"
    assert "9301_deadline.py" in fields["traceback"]  # where the time ran out
    assert fields["request_id"] == "r-1"
    assert 0 < fields["budget_ms"] <= (SERVER_LEAD_SECONDS + 1) * 1000


def test_the_client_gives_up_at_the_deadline_when_the_server_does_not(
    fresh_db: Env, tmp_path: Path
) -> None:
    # given: a revision that lifts the server's bound for its statement (as a server
    # that no longer answers would, from the client's side)
    run_migration_event({}, config=alembic_config())
    body = f"""\
op.create_table("deadline_probe", sa.Column("id", sa.Integer(), primary_key=True))
driver = op.get_bind().connection.driver_connection
await_(driver.execute("SET LOCAL statement_timeout = 0; " + {SLEEP_SQL!r}))"""
    config = with_revision(tmp_path, "a statement the server lets run", body)

    # when
    with pytest.raises(MigrationFailed, match="reached its deadline") as raised:
        run_migration_event({}, config=config, deadline=little_time())

    # then: the client's bound fired, cancelled the statement, and nothing of it stayed
    assert isinstance(raised.value.__cause__.__cause__, TimeoutError)  # type: ignore[union-attr]
    assert_nothing_left_of_the_run(fresh_db.url)


# The server stops answering the run's two connections (SIGSTOP on their backends, the
# revision's and the lock's; the pids go to `pid_file`), then the revision waits on it.
FREEZE_THE_RUN = """\
import os
import signal
from pathlib import Path

frozen = op.get_bind().exec_driver_sql(
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
    "AND (pid = pg_backend_pid() OR query LIKE 'SELECT pg_try_advisory_lock(%')"
).scalars().all()
Path({pid_file!r}).write_text(" ".join(map(str, frozen)))
for pid in frozen:
    os.kill(pid, signal.SIGSTOP)
op.execute({sleep!r})"""
ADVISORY_LOCKS_SQL = """
SELECT count(*) FROM pg_locks JOIN pg_database d ON d.oid = pg_locks.database
WHERE locktype = 'advisory' AND d.datname = current_database()
"""


def test_a_run_whose_server_stops_answering_fails_before_lambda_would_end_it(
    fresh_db: Env, tmp_path: Path
) -> None:
    # given: the database at head; a revision after which the server answers neither of the
    # run's connections; and asyncpg's command timeout as long as on Lambda (a whole run's
    # budget), far longer than the run's own deadline here
    run_migration_event({}, config=alembic_config())
    pid_file = tmp_path / "frozen.pids"
    body = FREEZE_THE_RUN.format(pid_file=str(pid_file), sleep=SLEEP_SQL)
    config = with_revision(tmp_path, "the server stops answering", body)
    engine = build_engine(migration_settings(get_migration_settings()), database_url=fresh_db.url)
    deadline = Deadline.after(SERVER_LEAD_SECONDS + 3)  # time to reach the revision

    async def run() -> None:
        # Bounded by when Lambda would end the invocation: past it, nothing is reported.
        reported_by = deadline.seconds_left() + REPORTING_MARGIN_SECONDS
        try:
            with pytest.raises(MigrationDeadlineExceeded):
                await asyncio.wait_for(
                    migrate(engine, config=config, deadline=deadline), timeout=reported_by
                )
        finally:
            await engine.dispose()

    # when
    try:
        asyncio.run(run())
    finally:
        frozen = [int(pid) for pid in pid_file.read_text().split()] if pid_file.exists() else []
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)

    # then: the run failed at its deadline, without an answer from either backend (the
    # revision's and the lock's were frozen), and once they hear the client has gone they
    # end: the lock is free, the revision rolled back
    assert len(frozen) == 2
    assert_nothing_left_of_the_run(fresh_db.url)

    async def lock_released() -> bool:
        connection = await asyncpg.connect(plain_dsn(fresh_db.url))
        try:
            return not await connection.fetchval(ADVISORY_LOCKS_SQL)
        finally:
            await connection.close()

    asyncio.run(wait_until(lock_released, lambda: "the migration lock outlived the run"))


def test_the_revisions_session_is_bounded_on_the_server_statement_by_statement(
    fresh_db: Env, tmp_path: Path
) -> None:
    # given: a revision that records its own session's settings, twice, 0.2 s apart
    run_migration_event({}, config=alembic_config())
    body = """\
op.execute(
    "CREATE TABLE deadline_probe AS SELECT 1 AS probe, name, setting::bigint AS ms "
    "FROM pg_settings WHERE name IN ('statement_timeout', 'lock_timeout', "
    "'idle_in_transaction_session_timeout', 'client_connection_check_interval')"
)
op.execute("SELECT pg_sleep(0.2)")
op.execute(
    "INSERT INTO deadline_probe SELECT 2, name, setting::bigint "
    "FROM pg_settings WHERE name = 'statement_timeout'"
)"""
    config = with_revision(tmp_path, "records its session's timeouts", body)
    budget_seconds = 120.0

    # when
    result = run_migration_event({}, config=config, deadline=Deadline.after(budget_seconds))

    # then
    assert result["applied"] == ["9301"]
    rows = fetch(fresh_db.url, "SELECT probe, name, ms FROM deadline_probe")
    first = {row["name"]: row["ms"] for row in rows if row["probe"] == 1}
    [later] = [row["ms"] for row in rows if row["probe"] == 2]
    budget_ms = (budget_seconds - SERVER_LEAD_SECONDS) * 1000
    assert 0 < later < first["statement_timeout"] <= budget_ms  # the time left, each time
    assert first["statement_timeout"] - later >= 200  # the 0.2 s between them, at least
    assert 0 < first["idle_in_transaction_session_timeout"] <= IDLE_IN_TRANSACTION_SECONDS * 1000
    assert first["client_connection_check_interval"] == CLIENT_CHECK_INTERVAL_SECONDS * 1000
    assert first["lock_timeout"] == DDL_LOCK_TIMEOUT_SECONDS * 1000


def test_after_a_concurrent_index_build_the_ddl_lock_timeout_is_back(
    fresh_db: Env, tmp_path: Path
) -> None:
    # given: a revision that builds an index concurrently (no lock timeout for that), then
    # records its session's lock timeout
    run_migration_event({}, config=alembic_config())
    body = """\
with op.get_context().autocommit_block():
    op.execute("CREATE INDEX CONCURRENTLY ix_users_last_name_probe ON users (last_name)")
op.execute(
    "CREATE TABLE deadline_probe AS SELECT setting::bigint AS ms "
    "FROM pg_settings WHERE name = 'lock_timeout'"
)"""
    config = with_revision(tmp_path, "records its lock timeout after a build", body)

    # when
    result = run_migration_event({}, config=config)

    # then: the revision's next statements wait for a table no longer than any other's
    assert result["applied"] == ["9301"]
    [row] = fetch(fresh_db.url, "SELECT ms FROM deadline_probe")
    assert row["ms"] == DDL_LOCK_TIMEOUT_SECONDS * 1000


def test_an_invocation_without_time_left_does_not_start(fresh_db: Env) -> None:
    with pytest.raises(MigrationFailed, match="reached its deadline"):
        handler({}, invocation(timeout_seconds=REPORTING_MARGIN_SECONDS))

    assert tables(fresh_db.url) == set()


# --- other actions -------------------------------------------------------------------------


def test_older_scripts_leave_a_database_migrated_by_newer_ones_alone(fresh_db: Env) -> None:
    # given: a newer release migrated the database past what the older scripts know
    newer = with_failing_revisions()
    run_migration_event({"action": "upgrade", "revision": "9001"}, config=newer)
    assert versions(fresh_db.url) == ["9001"]

    # when: the older code's migration runs again (a rollback, a redeploy)
    result = run_migration_event({"action": "upgrade"}, config=alembic_config())

    # then: nothing is applied or undone, and the run succeeds
    assert result["ok"] is True and result["ahead_of_scripts"] is True
    assert result["applied"] == []
    assert result["from_revision"] == result["to_revision"] == "9001"
    assert result["head"] == HEAD
    assert versions(fresh_db.url) == ["9001"]
    assert "release_notes" in tables(fresh_db.url)


def test_current_history_and_check(fresh_db: Env) -> None:
    before = handler({"action": "current"}, invocation())
    assert before["ok"] is True
    assert before["from_revision"] is None and before["to_revision"] is None
    assert before["applied"] == []
    handler({}, invocation())

    current = handler({"action": "current"}, invocation())
    history = handler({"action": "history"}, invocation())
    check = handler({"action": "check"}, invocation())

    assert current["from_revision"] == current["to_revision"] == HEAD
    assert [entry["revision"] for entry in history["history"]] == real_revisions()
    assert history["history"][-1]["is_head"] is True
    assert history["history"][0]["down_revision"] is None
    assert check == {**check, "ok": True, "drift": [], "applied": []}
    assert versions(fresh_db.url) == [HEAD]


def test_check_reports_drift_between_models_and_schema(fresh_db: Env) -> None:
    handler({}, invocation())
    fetch(fresh_db.url, "ALTER TABLE users DROP COLUMN last_name")

    result = handler({"action": "check"}, invocation())

    assert result["ok"] is False
    assert any("add_column" in diff and "last_name" in diff for diff in result["drift"])


def test_round_trip_upgrade_downgrade_to_base_upgrade(fresh_db: Env) -> None:
    handler({}, invocation())

    down = handler({"action": "downgrade", "revision": "base"}, invocation())
    assert down["ok"] is True
    assert down["from_revision"] == HEAD and down["to_revision"] is None
    assert down["applied"] == list(reversed(real_revisions()))
    assert tables(fresh_db.url) == {"alembic_version"}
    assert "superuser" not in down

    up = handler({"action": "upgrade"}, invocation())
    assert up["applied"] == real_revisions()
    assert versions(fresh_db.url) == [HEAD]
    assert handler({"action": "check"}, invocation())["drift"] == []


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"action": "downgrade"}, "explicit revision"),
        ({"action": "sideways"}, "unknown action"),
        ({"action": "upgrade", "revision": "nope"}, "nope"),
        ({"lock_timeout_seconds": 0}, "lock_timeout_seconds"),
    ],
)
def test_invalid_requests_fail(fresh_db: Env, event: dict[str, Any], message: str) -> None:
    with pytest.raises(MigrationFailed, match=message):
        handler(event, invocation())
    assert versions(fresh_db.url) == []


def test_invalid_settings_fail_without_leaking_them(
    fresh_db: Env, migrate_log: list[logging.LogRecord]
) -> None:
    db_password = "db-password-" + uuid.uuid4().hex
    superuser_password = "superuser-password-" + uuid.uuid4().hex
    url = make_url(fresh_db.url).set(password=db_password).render_as_string(hide_password=False)
    fresh_db.set(
        ENVIRONMENT="prod",
        DATABASE_URL=url,
        FIRST_SUPERUSER_PASSWORD=superuser_password,
        DB_CONNECT_TIMEOUT_SECONDS="0",
    )

    with pytest.raises(MigrationFailed, match="invalid settings") as raised:
        handler({}, invocation())

    logged = json.dumps(logged_fields(migrate_log, "migration failed"))
    assert logged != "[]"
    for secret in (db_password, superuser_password):
        assert secret not in str(raised.value) and secret not in logged
    assert "DB_CONNECT_TIMEOUT_SECONDS" in str(raised.value)
    assert versions(fresh_db.url) == []


# --- first superuser -------------------------------------------------------------------------


def test_the_first_superuser_is_created_after_upgrade_once(
    fresh_db: Env, migrate_log: list[logging.LogRecord]
) -> None:
    password = "first-superuser-password-" + uuid.uuid4().hex
    fresh_db.set(
        FIRST_SUPERUSER_USERNAME="root",
        FIRST_SUPERUSER_EMAIL="root@example.com",
        FIRST_SUPERUSER_PASSWORD=password,
    )

    first = handler({}, invocation())
    second = handler({}, invocation())

    assert first["superuser"] == {"username": "root", "created": True}
    assert second["superuser"] == {"username": "root", "created": False}
    rows = fetch(fresh_db.url, "SELECT username, is_superuser, hashed_password FROM users")
    assert [(r["username"], r["is_superuser"]) for r in rows] == [("root", True)]
    hashed = rows[0]["hashed_password"]
    logged = logged_fields(migrate_log, "migration finished")
    assert [entry["superuser"] for entry in logged] == [first["superuser"], second["superuser"]]
    seen = json.dumps([first, second, logged])
    assert password not in seen and hashed not in seen


def test_an_invalid_superuser_names_the_setting_without_the_password(
    fresh_db: Env, migrate_log: list[logging.LogRecord]
) -> None:
    password = uuid.uuid4().hex[:7]  # shorter than any user's password may be
    fresh_db.set(
        FIRST_SUPERUSER_USERNAME="root",
        FIRST_SUPERUSER_EMAIL="root@example.com",
        FIRST_SUPERUSER_PASSWORD=password,
    )

    with pytest.raises(MigrationFailed) as raised:
        handler({}, invocation())

    assert "invalid settings: FIRST_SUPERUSER_PASSWORD: " in str(raised.value)
    logged = json.dumps(logged_fields(migrate_log, "migration failed"))
    assert password not in str(raised.value) and password not in logged
    assert fetch(fresh_db.url, "SELECT count(*) AS n FROM users")[0]["n"] == 0


def test_a_superuser_without_a_password_is_not_created(fresh_db: Env) -> None:
    fresh_db.set(FIRST_SUPERUSER_USERNAME="root", FIRST_SUPERUSER_EMAIL="root@example.com")

    result = handler({}, invocation())

    assert result["superuser"]["created"] is False
    assert "no password configured" in result["superuser"]["skipped"]
    assert fetch(fresh_db.url, "SELECT count(*) AS n FROM users")[0]["n"] == 0


# --- the same code from the command line -----------------------------------------------------


def test_cli_migrate_prints_the_result(fresh_db: Env, capsys: pytest.CaptureFixture[str]) -> None:
    from lambda_app.devtools.cli import main

    assert main(["migrate"]) == 0
    assert json.loads(capsys.readouterr().out)["applied"] == real_revisions()

    assert main(["migrate", "downgrade"]) == 1
    assert "explicit revision" in capsys.readouterr().err


def test_cli_create_superuser_prints_a_generated_password_once(
    fresh_db: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_app.devtools.cli import main
    from lambda_app.identity.passwords import verify_password

    monkeypatch.setattr("getpass.getpass", lambda prompt: "")  # empty: generate one

    assert main(["create-superuser", "--username", "root", "--email", "root@example.com"]) == 0

    out = capsys.readouterr().out
    assert "Created superuser 'root'." in out
    [password] = re.findall(r"generated password: (\S+)", out)
    [row] = fetch(fresh_db.url, "SELECT is_superuser, hashed_password FROM users")
    assert row["is_superuser"] and verify_password(password, row["hashed_password"])[0]
    assert versions(fresh_db.url) == [HEAD]


def test_run_migration_event_is_the_handler_without_lambda(fresh_db: Env) -> None:
    result = run_migration_event({"action": "upgrade"}, config=alembic_config())
    assert result["to_revision"] == HEAD


def test_alembic_command_line_upgrade_and_check(fresh_db: Env) -> None:
    alembic = [sys.executable, "-m", "alembic"]
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}

    upgrade = subprocess.run(
        [*alembic, "-x", f"url={fresh_db.url}", "upgrade", "head"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BOUND_SECONDS,
        check=False,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    check = subprocess.run(
        [*alembic, "check"],
        cwd=PROJECT_ROOT,
        env={**env, "DATABASE_URL": fresh_db.url},
        capture_output=True,
        text=True,
        timeout=BOUND_SECONDS,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr
    assert versions(fresh_db.url) == [HEAD]


def test_ddl_that_waits_too_long_for_a_table_lock_fails_instead_of_stalling(
    fresh_db: Env,
) -> None:
    # given: the database at head, and a transaction holding a lock on a table
    run_migration_event({"action": "upgrade"}, config=alembic_config())
    config = alembic_config()
    config.set_main_option("path_separator", "os")
    config.set_main_option(
        "version_locations",
        os.pathsep.join(map(str, [migrations_dir() / "versions", LOCKING_REVISIONS])),
    )
    config.attributes[DDL_LOCK_TIMEOUT_ATTRIBUTE] = 0.5

    async def upgrade_while_the_table_is_in_use() -> BaseException | None:
        holder = await asyncpg.connect(plain_dsn(fresh_db.url))
        try:
            async with holder.transaction():
                await holder.execute("LOCK TABLE login_throttle IN ACCESS SHARE MODE")
                try:
                    # Bounded: without a lock timeout the upgrade would wait for ever.
                    run = asyncio.to_thread(run_migration_event, {}, config=config)
                    await asyncio.wait_for(run, timeout=BOUND_SECONDS)
                except MigrationFailed as exc:
                    return exc
                except TimeoutError:
                    return None
                return None
        finally:
            await holder.close()

    # when: a revision needs that table exclusively
    failure = asyncio.run(upgrade_while_the_table_is_in_use())

    # then: it gave up after the lock timeout, and nothing of it was applied
    assert failure is not None and "lock timeout" in str(failure)
    assert versions(fresh_db.url) == [HEAD]
    columns = fetch(
        fresh_db.url,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'login_throttle'",
    )
    assert "note" not in {row["column_name"] for row in columns}
