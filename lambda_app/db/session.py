"""The per-request session: one transaction per request, committed once.

Services and repositories only `flush()`. The request's session dependency
(`DbSession`) commits after the endpoint returns and before the response is sent,
and rolls everything back on any exception, so a request never leaves a partial
write behind. What must wait for that commit (a mail linking to a stored token) is
queued with `after_commit`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lambda_app.core.deadline import hold_off
from lambda_app.db.engine import get_engine

logger = logging.getLogger(__name__)

# The engine's session factory, made again when the engine is replaced.
_factory: tuple[AsyncEngine, async_sessionmaker[AsyncSession]] | None = None
# Set by set_sessionmaker (tests): then every request, read or write, uses it.
_override: async_sessionmaker[AsyncSession] | None = None


def get_sessionmaker() -> async_sessionmaker[AsyncSession]:
    """Sessions that write: one transaction, committed once per request."""
    global _factory
    if _override is not None:
        return _override
    engine = get_engine()
    if _factory is None or _factory[0] is not engine:
        _factory = (engine, async_sessionmaker(engine, expire_on_commit=False))
    return _factory[1]


def set_sessionmaker(maker: async_sessionmaker[AsyncSession] | None) -> None:
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
    session.info.setdefault(_AFTER_COMMIT, []).append(action)


@asynccontextmanager
async def transaction() -> AsyncIterator[AsyncSession]:
    """A session in one transaction: committed at the end, rolled back on any exception;
    after the commit, what was queued with `after_commit` runs."""
    async with get_sessionmaker()() as session:
        session.info[_RUNS_AFTER_COMMIT] = True
        try:
            yield session
            hold_off()  # the request's deadline never cancels a COMMIT (core.deadline)
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
    for action in session.info.pop(_AFTER_COMMIT, ()):
        try:
            await action()
        except Exception as exc:
            # The type, not the message: an action's error could quote what it sends.
            error = f"{type(exc).__module__}.{type(exc).__qualname__}"
            logger.error("after-commit action failed", extra={"fields": {"error_type": error}})


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
    async with get_sessionmaker()() as session, session.begin():
        yield session


async def _request_session() -> AsyncIterator[AsyncSession]:
    """One session per request, committed once, here, after the endpoint returns.

    Reads run in a transaction too: SQLAlchemy's asyncpg adapter begins one before a
    connection's first statement unless the connection is in autocommit, and a request
    can't tell in advance that it will only read.

    The session connects on its first query, not before: a request rejected before
    it needs the database (no or a bad token, a validation error) opens no
    connection, so a flood of them never becomes a flood of logins at the proxy.
    """
    async with transaction() as session:
        yield session


# scope="function": commit before the response is sent, so a failed commit
# becomes an error response instead of a success the client can't trust.
DbSession = Annotated[AsyncSession, Depends(_request_session, scope="function")]
