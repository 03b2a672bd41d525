"""The per-request session: one transaction per request, committed once.

Services and repositories only `flush()`. The request's session dependency
(`DbSession`) commits after the endpoint returns and before the response is sent,
and rolls everything back on any exception, so a request never leaves a partial
write behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lambda_app.db.engine import get_engine

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


async def _request_session() -> AsyncIterator[AsyncSession]:
    """One session per request, committed once, here, after the endpoint returns.

    Reads run in a transaction too, and must: behind a transaction-pooling proxy
    (PgBouncer, RDS Proxy) only a transaction keeps asyncpg's prepare and execute
    on the same server connection. In autocommit they can land on two different
    ones ("prepared statement does not exist"; the PgBouncer load test guards this).

    The session connects on its first query, not before: a request rejected before
    it needs the database (no or a bad token, a validation error) opens no
    connection, so a flood of them never becomes a flood of logins at the proxy.
    """
    async with get_sessionmaker()() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


# scope="function": commit before the response is sent, so a failed commit
# becomes an error response instead of a success the client can't trust.
DbSession = Annotated[AsyncSession, Depends(_request_session, scope="function")]
