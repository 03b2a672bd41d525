"""The per-request session: one transaction per request that writes, committed once.

Services and repositories only `flush()`. The request's session dependency
(`DbSession`) commits after the endpoint returns and before the response is sent,
and rolls everything back on any exception, so a request never leaves a partial
write behind. What must wait for that commit (a mail linking to a stored token) is
queued with `after_commit`.

GET and HEAD requests only read (HTTP's safe methods), so theirs is a `reading()`
session instead: each statement on its own, with no BEGIN and no COMMIT, and the
writes made through it refused before they reach the database.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import ColumnElement, delete, event, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction
from sqlalchemy.sql import Executable

from lambda_app.core.deadline import held_off, hold_off
from lambda_app.db.engine import get_engine

logger = logging.getLogger(__name__)

Sessions = async_sessionmaker[AsyncSession]
# The engine's session factories (writing, reading), made again when it is replaced.
_factories: tuple[AsyncEngine, Sessions, Sessions] | None = None
# Set by set_sessionmaker (tests): then every request, read or write, uses it.
_override: Sessions | None = None


def _engine_factories() -> tuple[Sessions, Sessions]:
    global _factories
    engine = get_engine()
    if _factories is None or _factories[0] is not engine:
        # AUTOCOMMIT costs no SQL: SQLAlchemy's asyncpg adapter then just never sends BEGIN.
        # (Setting it back when a kept connection returns to its pool names the server's
        # default level, so that connection's later transactions begin with
        # `BEGIN ISOLATION LEVEL READ COMMITTED`: still one round trip, and no pinning.)
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        _factories = (
            engine,
            async_sessionmaker(engine, expire_on_commit=False),
            async_sessionmaker(autocommit, expire_on_commit=False),
        )
    return _factories[1], _factories[2]


def get_sessionmaker() -> Sessions:
    """Sessions that write: one transaction, committed once per request."""
    if _override is not None:
        return _override
    return _engine_factories()[0]


def set_sessionmaker(maker: Sessions | None) -> None:
    """Install one session factory for every request, e.g. one bound to a test's outer
    transaction; `None` goes back to the engine's own sessions."""
    global _override
    _override = maker


AfterCommit = Callable[[], Awaitable[object]]  # what it returns is ignored
# Keys in Session.info: the queued actions, and whether anything will run them.
_AFTER_COMMIT = "lambda_app.after_commit"
_RUNS_AFTER_COMMIT = "lambda_app.runs_after_commit"


def after_commit(session: AsyncSession, action: AfterCommit) -> None:
    """Run `action` once the session's transaction has committed; never if it rolls back.

    For what must not happen for a write that didn't stand, such as mailing a link to a
    token that was never stored. Only a `transaction()` session (the request's
    `DbSession` is one) runs these, after its commit and holding no connection; any other
    session is refused here rather than dropping the action. An action that raises is
    logged (its type only) and the next one still runs: the write has committed, so an
    error there must not turn the request's success into a 500.
    """
    if not session.info.get(_RUNS_AFTER_COMMIT):
        raise RuntimeError("after_commit needs a session from transaction() (or DbSession)")
    if not session.in_transaction():
        # Begun now (no I/O: the connection comes with the first statement), so that a
        # rollback before any statement drops the action too: SQLAlchemy reports no
        # rollback of a transaction that never began.
        session.sync_session.begin()
    session.info.setdefault(_AFTER_COMMIT, []).append(action)


# Key in Session.info: the statements to run last, by name.
_BEFORE_COMMIT = "lambda_app.before_commit"


def last_before_commit(session: AsyncSession, name: str, statement: Executable) -> None:
    """Run `statement` as the transaction's last, just before its COMMIT; once per `name`,
    however often it is queued, and never if the transaction rolls back.

    For a clean-up that takes rows other requests may want (`FOR UPDATE SKIP LOCKED`):
    run earlier, the transaction would hold those rows while it waits for other locks,
    and two requests could deadlock; run last, it waits for nothing while it holds them.
    It works however the session commits (`transaction()`, `transaction_of_its_own`,
    `session.begin()`): SQLAlchemy runs the statement in its own commit.
    """
    if session.info.get(_READ_ONLY):  # it has no COMMIT to run before
        raise WriteWhileReading("a reading() session (a GET or HEAD request) cannot write")
    session.info.setdefault(_BEFORE_COMMIT, {})[name] = statement


def delete_a_few_last(
    session: AsyncSession,
    name: str,
    key: Sequence[ColumnElement[Any]],
    where: ColumnElement[bool],
    *,
    limit: int,
) -> None:
    """Delete up to `limit` rows that match `where` (the rows of `key`'s table, by that
    key), skipping rows other transactions hold, as the transaction's last statement
    (`last_before_commit`): a bounded clean-up that never waits, and holds what it takes
    while it waits for nothing."""
    table = key[0].table
    # MATERIALIZED: the rows are picked once. As a plain subquery, PostgreSQL may scan it
    # again as it deletes, and with SKIP LOCKED and no order a new scan can pick other
    # rows: more than `limit` go.
    rows = (
        select(*key)
        .where(where)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte(f"{table.name}_few")
        .prefix_with("MATERIALIZED")
    )
    chosen = select(*rows.c)
    last_before_commit(session, name, delete(table).where(tuple_(*key).in_(chosen)))


@event.listens_for(Session, "before_commit")
def _run_last_statements(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint's release is no COMMIT
        return
    # SQLAlchemy fires this before commit's own flush: pending ORM changes go first, so
    # the statement really is the last.
    session.flush()
    for statement in session.info.pop(_BEFORE_COMMIT, {}).values():
        session.execute(statement)


@event.listens_for(Session, "after_soft_rollback")
def _drop_what_waits_for_the_commit(session: Session, previous: SessionTransaction) -> None:
    """A rolled-back transaction's queued statements and actions go with its writes: a
    later transaction of the same session (after `session.rollback()`) must not commit
    them, nor mail a link to a token that was never stored."""
    if previous.parent is None:  # the transaction itself, not a savepoint or a failed flush's
        session.info.pop(_BEFORE_COMMIT, None)
        session.info.pop(_AFTER_COMMIT, None)


@asynccontextmanager
async def _committed_at_the_end(*, request_goes_on: bool) -> AsyncIterator[AsyncSession]:
    """A new session, committed when the block ends and rolled back on any exception.

    The request's deadline never cancels the COMMIT (core.deadline): cancelled mid-way, it
    might stand while the client is told it failed. When the request goes on after it (a
    transaction of its own), the deadline applies again once it is done.
    """
    async with get_sessionmaker()() as session:
        try:
            yield session
            if request_goes_on:
                with held_off():
                    await session.commit()
            else:
                hold_off()
                await session.commit()
        except BaseException:
            await session.rollback()
            raise


@asynccontextmanager
async def transaction() -> AsyncIterator[AsyncSession]:
    """A session in one transaction: committed at the end, rolled back on any exception;
    after the commit, what was queued with `after_commit` runs."""
    async with _committed_at_the_end(request_goes_on=False) as session:
        session.info[_RUNS_AFTER_COMMIT] = True
        yield session
    for action in session.info.pop(_AFTER_COMMIT, ()):
        try:
            await action()
        except Exception as exc:
            # The type, not the message: an action's error could quote what it sends.
            error = f"{type(exc).__module__}.{type(exc).__qualname__}"
            logger.error("after-commit action failed", extra={"fields": {"error_type": error}})


@asynccontextmanager
async def committed_at_once() -> AsyncIterator[AsyncSession]:
    """A short transaction committed when the block ends, for a request that goes on
    afterwards and has no session of its own (a password recovery, which then waits out
    its pad): its COMMIT is held off the deadline, which applies again once it is done."""
    async with _committed_at_the_end(request_goes_on=True) as session:
        yield session


@asynccontextmanager
async def transaction_of_its_own(request_session: AsyncSession) -> AsyncIterator[AsyncSession]:
    """A short transaction committed at once, for what must stand whatever the request
    does next (a failed login's counter, a revocation, a link the caller must know went).

    The request's own transaction ends first (rolled back: by then it has only read), so
    a request never holds two connections at once; behind RDS Proxy a burst of failed
    logins would otherwise ask for twice the connections, and DB_POOL=single keeps one.
    Objects loaded in `request_session` are expired by it: read what you need before.
    """
    await request_session.rollback()
    async with committed_at_once() as session:
        yield session


class WriteWhileReading(RuntimeError):
    """A `reading()` session was asked to write: a bug in the code that asked (a 500)."""


# Key in Session.info: the session is a reading() one.
_READ_ONLY = "lambda_app.read_only"


@asynccontextmanager
async def reading() -> AsyncIterator[AsyncSession]:
    """A session that only reads, each statement on its own (autocommit).

    It saves the BEGIN and the COMMIT, two of a one-statement read's four round trips
    (BEGIN, prepare, execute, COMMIT), and loses nothing a read needs: under READ
    COMMITTED each statement takes its own snapshot inside a transaction as well. Outside
    a transaction a pooling proxy may give the client another server connection at any
    Sync, and a type lookup asyncpg may run between a statement's prepare and its
    execute ends with one. That is safe: with its statement cache off, asyncpg sends the
    statement's Parse again with its Bind, so the execute never depends on an earlier
    round trip (tests/reliability/test_prepared_statements.py records it on the wire).
    What needs a transaction has none here: `with_for_update()` locks nothing past its
    statement, and `stream()` fails.

    Writes through the session are refused (`WriteWhileReading`): a flush of new,
    changed or deleted objects, and an INSERT, UPDATE or DELETE statement built with
    SQLAlchemy, because outside a transaction a write that fails half-way would stand
    half-done. (Raw `text()` SQL and bulk_* calls are not inspected.)
    """
    maker = _override if _override is not None else _engine_factories()[1]
    async with maker() as session:
        session.info[_READ_ONLY] = True
        yield session


@event.listens_for(Session, "before_flush")
def _refuse_flush_while_reading(session: Session, _flush: UOWTransaction, _objects: object) -> None:
    if session.info.get(_READ_ONLY) and (session.new or session.dirty or session.deleted):
        raise WriteWhileReading("a reading() session (a GET or HEAD request) cannot write")


@event.listens_for(Session, "do_orm_execute")
def _refuse_statement_while_reading(state: ORMExecuteState) -> None:
    if state.session.info.get(_READ_ONLY) and (
        state.is_insert or state.is_update or state.is_delete
    ):
        raise WriteWhileReading("a reading() session (a GET or HEAD request) cannot write")


# HTTP's safe methods (RFC 9110, section 9.2.1): a request made with one must not write.
READ_ONLY_METHODS = frozenset({"GET", "HEAD"})


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: for a GET or HEAD a `reading()` one, otherwise a
    `transaction()` committed once, here, after the endpoint returns.

    The session connects on its first query, not before: a request rejected before
    it needs the database (no or a bad token, a validation error) opens no
    connection, so a flood of them never becomes a flood of logins at the proxy.
    """
    sessions = reading if request.method in READ_ONLY_METHODS else transaction
    async with sessions() as session:
        yield session


# scope="function": commit before the response is sent, so a failed commit
# becomes an error response instead of a success the client can't trust.
DbSession = Annotated[AsyncSession, Depends(_request_session, scope="function")]
