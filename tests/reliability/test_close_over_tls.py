"""Closing connections over TLS, as the API does behind RDS Proxy: a clean goodbye each time.

NullPool closes every request's connection without waiting for the server
(`lambda_app.core.db._close_without_waiting`). Behind a TLS-terminating proxy the
Terminate message must still arrive, encrypted, before the socket closes; a
client that just vanished would show up in the proxy's log on every request and
would leave it to guess whether the server connection is reusable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from tests.reliability.pgbouncer import AdminConsole, PgBouncer

CONNECTIONS = 3


@pytest.fixture(scope="module")
def tls_pgbouncer(database_url_for_tests: str) -> Iterator[PgBouncer]:
    bouncer = PgBouncer.in_front_of(
        database_url_for_tests, pool_size=2, client_tls=True, log_disconnections=True
    )
    bouncer.start()
    yield bouncer
    bouncer.cleanup()


def _app_clients(bouncer: PgBouncer) -> list[dict[str, str | None]]:
    with AdminConsole(bouncer.port) as console:
        return [row for row in console.query("SHOW CLIENTS") if row.get("database") == "app"]


async def _disconnect_reasons(bouncer: PgBouncer, expected: int) -> list[str]:
    for _ in range(300):  # a bound against hanging, not a speed target
        reasons = [
            line.split("closing because:", 1)[1].strip()
            for line in bouncer.log_text().splitlines()
            if "closing because:" in line and " app/" in line
        ]
        if len(reasons) >= expected:
            return reasons
        await asyncio.sleep(0.05)
    raise AssertionError(f"PgBouncer logged no disconnects:\n{bouncer.log_text()[-3000:]}")


async def test_each_closed_connection_says_goodbye_over_tls(tls_pgbouncer: PgBouncer) -> None:
    from lambda_app.core.db import build_engine
    from lambda_app.core.settings import get_settings

    engine = build_engine(get_settings(), database_url=f"{tls_pgbouncer.url()}?ssl=require")
    for _ in range(CONNECTIONS):
        async with engine.connect() as conn:  # NullPool: a new connection, closed at the end
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
            [client] = _app_clients(tls_pgbouncer)
            assert client["tls"], "the connection to the proxy is not encrypted"

    reasons = await _disconnect_reasons(tls_pgbouncer, CONNECTIONS)
    # "client close request" is PgBouncer's word for a Terminate message; a socket
    # closed without one reads "client unexpected eof".
    assert [r.split(" (age")[0] for r in reasons] == ["client close request"] * CONNECTIONS
    assert _app_clients(tls_pgbouncer) == []
    assert "unclean" not in tls_pgbouncer.log_text()
    await engine.dispose()
