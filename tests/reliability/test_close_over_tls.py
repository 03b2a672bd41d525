"""Connections to a TLS-terminating proxy, as behind RDS Proxy: one per request, closed cleanly.

NullPool closes every request's connection without waiting for the server
(`lambda_app.db.engine._close_without_waiting`). The Terminate message must still
arrive, encrypted, before the socket closes; a client that just vanished would
show up in the proxy's log on every request and leave it to guess whether the
server connection is reusable.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from sqlalchemy import text

from tests.fixtures.accounts import register_and_login
from tests.fixtures.polling import wait_until
from tests.reliability.pgbouncer import PgBouncer

CONNECTIONS = 3


def _logins(bouncer: PgBouncer) -> int:
    return sum("login attempt: db=app" in line for line in bouncer.log_text().splitlines())


def _disconnect_reasons(bouncer: PgBouncer) -> list[str]:
    return [
        line.split("closing because:", 1)[1].split(" (age")[0].strip()
        for line in bouncer.log_text().splitlines()
        if "closing because:" in line and " app/" in line
    ]


async def _wait_until(condition: Callable[[], bool], what: str, bouncer: PgBouncer) -> None:
    await wait_until(condition, lambda: f"{what}; PgBouncer's log:\n{bouncer.log_text()[-3000:]}")


async def _wait_for_no_clients(bouncer: PgBouncer) -> None:
    await _wait_until(lambda: bouncer.app_clients() == [], "clients left connected", bouncer)


async def test_each_closed_connection_says_goodbye_over_tls(tls_pgbouncer: PgBouncer) -> None:
    from lambda_app.core.settings import get_settings
    from lambda_app.db.engine import build_engine

    engine = build_engine(get_settings(), database_url=f"{tls_pgbouncer.url()}?ssl=require")
    for _ in range(CONNECTIONS):
        async with engine.connect() as conn:  # NullPool: a new connection, closed at the end
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
            [client] = tls_pgbouncer.app_clients()
            assert client["tls"], "the connection to the proxy is not encrypted"

    await _wait_until(
        lambda: len(_disconnect_reasons(tls_pgbouncer)) >= CONNECTIONS,
        "PgBouncer logged too few disconnects",
        tls_pgbouncer,
    )
    # "client close request" is PgBouncer's word for a Terminate message; a socket
    # closed without one reads "client unexpected eof".
    assert _disconnect_reasons(tls_pgbouncer) == ["client close request"] * CONNECTIONS
    assert tls_pgbouncer.app_clients() == []
    assert "unclean" not in tls_pgbouncer.log_text()
    await engine.dispose()


async def test_each_request_opens_one_connection_and_closes_it(  # type: ignore[no-untyped-def]
    tls_pgbouncer: PgBouncer, app, engine
) -> None:
    from lambda_app.core.settings import get_settings
    from lambda_app.db.engine import build_engine, set_engine

    set_engine(build_engine(get_settings(), database_url=f"{tls_pgbouncer.url()}?ssl=require"))
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            bearer = (await register_and_login(client)).headers
            await _wait_for_no_clients(tls_pgbouncer)
            logins_before = _logins(tls_pgbouncer)

            for _ in range(CONNECTIONS):
                me = await client.get("/api/users/me", headers=bearer)
                assert me.status_code == 200, me.text
            # A request refused before it needs the database opens no connection.
            refused = await client.get("/api/users/me", headers={"authorization": "Bearer x.y.z"})
            assert refused.status_code == 401

        await _wait_for_no_clients(tls_pgbouncer)
        # One login per authenticated request, none for the refused one.
        assert _logins(tls_pgbouncer) - logins_before == CONNECTIONS
    finally:
        set_engine(engine)
