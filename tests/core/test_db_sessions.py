"""How the request engine and sessions talk to PostgreSQL."""

import logging
import os
import signal
import uuid

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool.base import ResetStyle

from lambda_app.core.settings import get_settings
from lambda_app.db import session as db
from lambda_app.db.engine import Pool, build_engine, set_engine
from lambda_app.models import User
from tests.fixtures.polling import count_backends, wait_until
from tests.reliability.recording_relay import Message, relayed


async def test_writing_sessions_run_inside_a_transaction(engine: AsyncEngine) -> None:
    async with db.transaction() as session:
        await session.execute(select(User.id).limit(1))
        raw = await (await session.connection()).get_raw_connection()
        assert raw.driver_connection.is_in_transaction()


@pytest.mark.parametrize("pool", ["null", "single"])
async def test_reading_sessions_run_each_statement_on_its_own(
    engine: AsyncEngine, database_url_for_tests: str, pool: Pool
) -> None:
    scratch = build_engine(get_settings(), database_url=database_url_for_tests, pool=pool)
    set_engine(scratch)
    try:
        async with db.reading() as session:
            await session.execute(select(User.id).limit(1))
            read = (await (await session.connection()).get_raw_connection()).driver_connection
            assert not read.is_in_transaction()
        # and the next session, on the kept connection too, is back to one transaction
        async with db.transaction() as session:
            await session.execute(select(User.id).limit(1))
            written = (await (await session.connection()).get_raw_connection()).driver_connection
            assert written.is_in_transaction()
        assert (written is read) == (pool == "single")
    finally:
        set_engine(engine)
        await scratch.dispose()


def _new_user(username: str) -> User:
    email = f"{username}@example.com"
    return User(
        username=username,
        slug=username,
        email=email,
        first_name="",
        last_name="",
        hashed_password="x",
    )


async def test_reading_sessions_refuse_every_write_before_it_reaches_the_database(
    engine: AsyncEngine,
) -> None:
    stored, refused = (f"read_only_{uuid.uuid4().hex[:12]}" for _ in range(2))
    async with db.transaction() as session:
        session.add(_new_user(stored))
    try:
        # a new object, flushed by hand or by the autoflush before a query
        async with db.reading() as session:
            session.add(_new_user(refused))
            with pytest.raises(db.WriteWhileReading):
                await session.flush()
        async with db.reading() as session:
            session.add(_new_user(refused))
            with pytest.raises(db.WriteWhileReading):
                await session.execute(select(User.id).limit(1))
        # a change to a loaded object, and to a deleted one
        async with db.reading() as session:
            user = (await session.execute(select(User).where(User.username == stored))).scalar_one()
            user.last_name = "changed while reading"
            with pytest.raises(db.WriteWhileReading):
                await session.flush()
        async with db.reading() as session:
            user = (await session.execute(select(User).where(User.username == stored))).scalar_one()
            await session.delete(user)
            with pytest.raises(db.WriteWhileReading):
                await session.flush()
        # a DML statement
        async with db.reading() as session:
            change = update(User).where(User.username == stored).values(last_name="changed")
            with pytest.raises(db.WriteWhileReading):
                await session.execute(change)

        # then: nothing reached the database
        async with engine.connect() as conn:
            found = select(User.username, User.last_name).where(
                User.username.in_([stored, refused])
            )
            assert (await conn.execute(found)).all() == [(stored, "")]
    finally:
        async with db.transaction() as session:
            await session.execute(delete(User).where(User.username == stored))


async def _first_name(engine: AsyncEngine, username: str) -> str:
    async with engine.connect() as conn:
        query = select(User.first_name).where(User.username == username)
        return str((await conn.execute(query)).scalar_one())


async def test_a_last_statement_runs_after_pending_changes_and_only_at_the_commit(
    engine: AsyncEngine,
) -> None:
    username = f"last_{uuid.uuid4().hex[:12]}"
    async with db.transaction() as session:
        session.add(_new_user(username))
    last = update(User).where(User.username == username).values(first_name="last")
    try:
        async with db.transaction() as session:
            user = (await session.execute(select(User).where(User.username == username))).one()[0]
            db.last_before_commit(session, "test.last", last)
            # a savepoint released, and one rolled back: neither is the COMMIT
            async with session.begin_nested():
                pass
            with pytest.raises(LookupError):
                async with session.begin_nested():
                    raise LookupError
            assert await _first_name(engine, username) == ""
            user.first_name = "pending"  # not flushed yet when the commit begins
        # the pending change was written first, the queued statement last
        assert await _first_name(engine, username) == "last"

        with pytest.raises(db.WriteWhileReading):  # a read has no COMMIT to run before
            async with db.reading() as session:
                db.last_before_commit(session, "test.last", last)
    finally:
        async with db.transaction() as session:
            await session.execute(delete(User).where(User.username == username))


def test_pool_does_not_roll_back_connections_it_closes_anyway(engine: AsyncEngine) -> None:
    # NullPool closes on return; a reset ROLLBACK would be a wasted round trip.
    reset = engine.sync_engine.pool._reset_on_return  # type: ignore[attr-defined]
    assert reset is ResetStyle.reset_none


async def _wait_until_gone(url: str, pid: int) -> None:
    async def gone() -> bool:
        return await count_backends(url, pid=pid) == 0

    await wait_until(gone, lambda: f"server backend {pid} outlived its closed connection")


async def test_closing_a_connection_never_waits_for_the_server(
    engine: AsyncEngine, database_url_for_tests: str, caplog: pytest.LogCaptureFixture
) -> None:
    # given: a connection whose server backend is frozen, so it can't acknowledge anything
    conn = await engine.connect()
    pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    asyncpg_connection = (await conn.get_raw_connection()).driver_connection
    await conn.commit()
    os.kill(pid, signal.SIGSTOP)
    try:
        # when: NullPool closes it (what ends every request)
        with caplog.at_level(logging.WARNING, logger="sqlalchemy.pool"):
            await conn.close()
        # then: the client side closed without a reply from the server. Waiting for one
        # (asyncpg's close()) would end in the command timeout and a logged pool error.
        assert asyncpg_connection.is_closed()
        assert await count_backends(database_url_for_tests, pid=pid) == 1  # frozen, unanswered
        assert not [r for r in caplog.records if r.name.startswith("sqlalchemy")]
    finally:
        os.kill(pid, signal.SIGCONT)
    # and the server got the Terminate message: the backend exits on its own
    await _wait_until_gone(database_url_for_tests, pid)


INSERT_USER = (
    "INSERT INTO users (username, slug, email, first_name, last_name, hashed_password)"
    " VALUES ($1, $1, $2, '', '', 'x')"
)


@pytest.mark.parametrize(
    "begun_by",
    [
        # SQLAlchemy's own close rolls back the transaction it began, before the pool's
        pytest.param("sqlalchemy", id="begun-by-sqlalchemy"),
        # one begun on the DBAPI connection itself: only the pool's close (NullPool's
        # do_close, db/engine.py's _close_without_waiting) can roll it back
        pytest.param("dbapi", id="begun-on-the-dbapi-connection"),
    ],
)
async def test_closing_mid_transaction_rolls_it_back_first(
    engine: AsyncEngine, api_database_url_for_tests: str, begun_by: str
) -> None:
    # given: an engine dialling the server through a relay that records what it sends,
    # and a connection inside a transaction that wrote
    username = f"close_{uuid.uuid4().hex[:12]}"
    values = (username, f"{username}@example.com")
    async with relayed(api_database_url_for_tests) as (relay, relayed_url):
        through_relay = build_engine(get_settings(), database_url=relayed_url)
        conn = await through_relay.connect()
        if begun_by == "sqlalchemy":
            await conn.exec_driver_sql(INSERT_USER, values)
        else:
            await conn.run_sync(
                lambda sync: sync.connection.dbapi_connection.cursor().execute(INSERT_USER, values)
            )

        # when: NullPool closes it, the transaction never committed
        await conn.close()
        await through_relay.dispose()

    # then: the last statement the connection sent before it hung up was a ROLLBACK. (The
    # server also ends the transaction when the connection drops; what is checked here is
    # the client's own ROLLBACK. The Terminate after it may not reach the relay: the close
    # does not wait for it to be read.)
    [sent] = relay.sent
    statements = [message for message in sent if message.type != "X"]
    assert statements[-1] == Message("Q", "ROLLBACK;"), sent
    async with engine.connect() as check:
        count = await check.scalar(
            text("SELECT count(*) FROM users WHERE username = :u"), {"u": username}
        )
    assert count == 0


async def test_after_commit_actions_run_once_committed_and_never_after_a_rollback(
    engine: AsyncEngine,
) -> None:
    ran: list[str] = []

    async def note(what: str) -> None:
        ran.append(what)

    # a transaction that commits: its action runs after the commit, once
    async with db.transaction() as session:
        db.after_commit(session, lambda: note("committed"))
        await session.execute(select(User.id).limit(1))
        assert ran == []
    assert ran == ["committed"]

    # one that rolls back: its action never runs
    with pytest.raises(ZeroDivisionError):
        async with db.transaction() as session:
            db.after_commit(session, lambda: note("rolled back"))
            1 / 0  # noqa: B018
    assert ran == ["committed"]

    # one rolled back and then written again: only what was queued after the rollback runs
    async with db.transaction() as session:
        db.after_commit(session, lambda: note("undone"))
        await session.rollback()
        db.after_commit(session, lambda: note("redone"))
        await session.execute(select(User.id).limit(1))
    assert ran == ["committed", "redone"]


async def test_an_after_commit_action_that_fails_is_logged_and_the_next_still_runs(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    async def fail() -> None:
        raise ValueError("a message that may quote what the action sends")

    async def note() -> None:
        ran.append("second")

    with caplog.at_level(logging.ERROR, logger="lambda_app.db.session"):
        async with db.transaction() as session:
            db.after_commit(session, fail)
            db.after_commit(session, note)

    assert ran == ["second"]
    (record,) = [r for r in caplog.records if r.name == "lambda_app.db.session"]
    assert record.fields == {"error_type": "builtins.ValueError"}  # type: ignore[attr-defined]
    assert "quote" not in record.getMessage() and record.exc_info is None


async def test_after_commit_refuses_a_session_that_would_never_run_it(
    engine: AsyncEngine,
) -> None:
    async def never() -> None:
        raise AssertionError("must not run")

    async with db.get_sessionmaker()() as session:
        with pytest.raises(RuntimeError, match="transaction"):
            db.after_commit(session, never)
    async with db.reading() as session:  # nothing commits there
        with pytest.raises(RuntimeError, match="transaction"):
            db.after_commit(session, never)
