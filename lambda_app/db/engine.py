"""The database engine: one per process (one Lambda container), created lazily on first use
and never at import time. `NullPool` by default: a Lambda container serves one request at
a time and may be frozen for minutes between requests, and RDS Proxy (or PgBouncer)
pools on the server.

`DB_POOL=single` keeps one connection per container instead, so a warm request skips the
TLS handshake and the login at the proxy (docs/performance.md has the figures and the
trade-offs). It is checked before use (pre-ping), replaced before RDS Proxy's client
idle timeout could close it, and closed before a SnapStart snapshot (its socket too).
"""

from __future__ import annotations

import asyncio
import warnings
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, NullPool, QueuePool
from sqlalchemy.util import await_

from lambda_app.core.settings import DatabaseSettings, get_settings
from lambda_app.core.snapstart import after_restore, before_snapshot
from lambda_app.db.plan import ConnectionPlan
from lambda_app.db.proxy_safe_connection import ProxySafeConnection
from lambda_app.db.sources import plan_connection

_engine: AsyncEngine | None = None
# DB_POOL: a connection per request (NullPool), or one kept per container.
Pool = Literal["null", "single"]

# A kept connection (DB_POOL=single) older than this is replaced at its next checkout.
# The pool counts age, not idle time, and an age under RDS Proxy's client idle timeout
# (5 minutes, infra_cdk/constructs/database.py) means the proxy never closed it for
# idling: no request starts on a socket the proxy has hung up.
KEPT_CONNECTION_RECYCLE_SECONDS = 240
# The pre-ping's own bound, far below the command timeout: a flow dropped without a word
# (a failover, a NAT) costs this, the adapter's close of the dead connection (at most
# 2 s more) and a reconnect, not a failed request.
KEPT_CONNECTION_PING_TIMEOUT_SECONDS = 2.0


def unnamed_statement() -> str:
    """The name for every statement SQLAlchemy's asyncpg adapter prepares: none.

    Behind a transaction-pooling proxy (RDS Proxy, PgBouncer) clients share the proxy's
    server connections, and a named statement stays on the one that prepared it: asyncpg
    closes a statement only at its connection's next prepare, and never the last one of a
    request, since NullPool hangs up right after COMMIT. So every request would leave a
    statement behind, about 10 KB of a backend's memory for as long as the proxy keeps that
    connection (and names would have to differ across every client). The unnamed statement
    lives until the next one on the same server connection, and the adapter executes each
    right after preparing it, before asyncpg's Sync lets the proxy hand the server
    connection to another client (db.session's `reading` says why even a read outside a
    transaction is safe). (With its statement cache off, asyncpg would
    choose the unnamed statement by itself; this says so, against the unique names
    SQLAlchemy's documentation suggests for proxies.)
    """
    return ""


def proxy_safe_connect_args(settings: DatabaseSettings) -> dict[str, Any]:
    """asyncpg arguments that are safe behind RDS Proxy / PgBouncer transaction pooling."""
    return {
        "statement_cache_size": 0,  # asyncpg's own prepared-statement cache
        "prepared_statement_cache_size": 0,  # SQLAlchemy's asyncpg adapter cache
        "prepared_statement_name_func": unnamed_statement,
        "timeout": settings.db_connect_timeout_seconds,
        "command_timeout": settings.db_command_timeout_seconds,
        # Only application_name: other startup parameters make RDS Proxy pin sessions.
        "server_settings": {"application_name": settings.db_application_name},
        # No set_config('jit', ...) around asyncpg's type lookups (they would pin):
        # for every plan, since the URL path and the AWS creators all pass these on.
        "connection_class": ProxySafeConnection,
    }


def build_engine(
    settings: DatabaseSettings,
    *,
    database_url: str | None = None,
    pool: Pool = "null",
) -> AsyncEngine:
    """Create an engine for `settings` (or an explicit URL, used by tests and tools)."""
    plan = plan_connection(settings, database_url=database_url)
    return engine_for_plan(plan, settings, pool=pool)


def _engine_options(settings: DatabaseSettings, pool: Pool) -> dict[str, Any]:
    common = {
        "echo": settings.sql_echo,
        # A failed statement's exception message (logged with its traceback) would
        # otherwise carry its bound values: a new user's password hash, an email.
        "hide_parameters": True,
    }
    if pool == "single":
        return common | {
            "poolclass": AsyncAdaptedQueuePool,
            "pool_size": 1,
            # One connection per container, never two: what commits in a transaction of
            # its own ends the request's transaction first (db.session's
            # transaction_of_its_own).
            "max_overflow": 0,
            "pool_pre_ping": True,
            "pool_recycle": KEPT_CONNECTION_RECYCLE_SECONDS,
            "pool_reset_on_return": "rollback",
        }
    return common | {
        "poolclass": NullPool,
        # NullPool closes every connection when it is returned, and closing ends any
        # transaction server-side: the pool's ROLLBACK-on-return would be one more
        # round trip per request for nothing.
        "pool_reset_on_return": None,
    }


def _close_without_waiting(dbapi_connection: Any) -> None:
    """Close a connection the way SQLAlchemy's asyncpg adapter does, minus the wait.

    The adapter's close() sends PostgreSQL's Terminate message and then waits for
    the server to hang up (a round trip to RDS Proxy, a backend exit locally):
    every request paid that after its COMMIT, for nothing. asyncpg's terminate()
    sends the same Terminate message and closes the socket without waiting. By the
    time NullPool closes a connection its transaction has ended (SQLAlchemy's own close
    rolls back the one it began, a failed request's too); if one is still open (begun on
    the DBAPI connection itself), it is rolled back first, as before.
    """
    try:
        dbapi_connection.rollback()  # no round trip unless a transaction is open
    finally:
        dbapi_connection.driver_connection.terminate()


def _ping_in_one_round_trip(dbapi_connection: Any) -> bool:
    """Check a kept connection (DB_POOL=single) with one simple-protocol `SELECT 1`.

    The adapter's own ping wraps an extended-protocol query in BEGIN and ROLLBACK, so
    that a transaction-pooling proxy keeps its prepare and execute on one server
    connection: four round trips before every request. A simple-protocol query is one
    message, which no proxy splits. Failures go through the adapter's own translation, so
    the pool still tells a dead connection (replaced) from any other error (raised). No
    answer in time is a dead connection too: False makes the pool replace it.
    """
    driver_connection = dbapi_connection.driver_connection
    try:
        await_(driver_connection.execute("SELECT 1", timeout=KEPT_CONNECTION_PING_TIMEOUT_SECONDS))
    except TimeoutError:
        return False
    except Exception as error:
        dbapi_connection._handle_exception(error)
    return True


# Arguments of SQLAlchemy's asyncpg adapter, not of asyncpg.connect().
_ADAPTER_ARGS = ("prepared_statement_cache_size", "prepared_statement_name_func")


def engine_for_plan(
    plan: ConnectionPlan, settings: DatabaseSettings, *, pool: Pool = "null"
) -> AsyncEngine:
    connect_args = proxy_safe_connect_args(settings) | plan.connect_args
    # The engine dials through a creator of ours, for every plan, because
    # SQLAlchemy's own `async_creator=` calls the adapter's connect() without
    # arguments, which would bring back its statement cache (100 entries) and
    # named statements: unsafe behind RDS Proxy. The adapter's
    # arguments go to the adapter, as create_async_engine's docs show; asyncpg's own
    # go to asyncpg.connect, or to the plan's creator, which adds fresh credentials.
    adapter_args = {name: connect_args.pop(name) for name in _ADAPTER_ARGS}

    async def open_connection() -> Any:
        if plan.async_creator is not None:
            return await plan.async_creator(**connect_args)
        return await dbapi.asyncpg.connect(*url_args, **{**url_params, **connect_args})

    def creator() -> Any:
        return dbapi.connect(async_creator_fn=open_connection, **adapter_args)

    engine = create_async_engine(plan.url, creator=creator, **_engine_options(settings, pool))
    dialect = engine.sync_engine.dialect
    dbapi = dialect.loaded_dbapi
    url_args, url_params = dialect.create_connect_args(engine.url)
    for name in _ADAPTER_ARGS:
        url_params.pop(name, None)  # ours win, as connect_args= would over URL parameters
    # `do_close` is the dialect's documented hook for closing a DBAPI connection;
    # NullPool calls it once per request, the kept connection's pool when it replaces one.
    # (A connection the pool gives up on still goes through the adapter's graceful close,
    # which waits up to 2 s for the cancel of what it was running to land: without that
    # wait a COMMIT that timed out on the client could still complete on the server.)
    setattr(dialect, "do_close", _close_without_waiting)  # noqa: B010
    if pool == "single":  # `do_ping`: the dialect's documented hook for the pre-ping
        setattr(dialect, "do_ping", _ping_in_one_round_trip)  # noqa: B010
    return engine


def get_engine() -> AsyncEngine:
    """The process-wide engine, created on first call."""
    global _engine
    if _engine is None:
        settings = get_settings()
        _engine = build_engine(settings, pool=settings.db_pool)
    return _engine


def set_engine(engine: AsyncEngine | None) -> None:
    """Install an engine (tests, the migration handler); `None` resets to lazy creation."""
    global _engine
    _engine = engine


@before_snapshot
@after_restore
def close_kept_connections() -> None:
    """Close what the pool keeps (DB_POOL=single): no socket goes into a snapshot, and
    none from one is used after a restore. NullPool keeps nothing: a no-op.

    Lambda's runtime runs the hooks from its own thread between invocations, with no event
    loop running, and asyncpg's terminate() leaves the socket's close() to a callback on
    the connection's loop: disposed there and then, the socket would still be open
    (CLOSE_WAIT) in the snapshot. So the pool is disposed on that loop, run until it is
    done: the thread's current one, the container's (the API handler makes it current).
    From inside a running loop (a test) the loop closes the sockets right after.
    """
    if _engine is None:
        return
    pool = _engine.sync_engine.pool
    loop = _idle_event_loop() if isinstance(pool, QueuePool) and pool.checkedin() else None
    if loop is None:
        _engine.sync_engine.dispose()
    else:
        loop.run_until_complete(_engine.dispose())


def _idle_event_loop() -> asyncio.AbstractEventLoop | None:
    """This thread's current event loop if it is not running (None if it is, or if there
    is none: never a new one)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return None
    try:
        with warnings.catch_warnings():
            # Python 3.12 and 3.13 warn, then make a loop, when none is current.
            warnings.simplefilter("error", DeprecationWarning)
            loop = asyncio.get_event_loop()
    except (RuntimeError, DeprecationWarning):
        return None
    return None if loop.is_closed() else loop
