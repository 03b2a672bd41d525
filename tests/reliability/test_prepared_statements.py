"""No prepared statement outlives its request on the proxy's server connections.

Behind a transaction-pooling proxy (RDS Proxy, PgBouncer) a named prepared statement
stays on the server connection that prepared it after the client has gone, in that
backend's memory, for as long as the proxy keeps the connection: a slow leak of about
10 KB per request, which no error ever reports. Behind a PgBouncer with a single server
connection, every request goes through that one, so whatever they left there is counted.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from lambda_app.core.settings import get_settings
from lambda_app.db.engine import Pool, build_engine, set_engine
from tests.fixtures.accounts import register_and_login
from tests.reliability.pgbouncer import PgBouncer

READS = 20


@pytest.fixture(scope="module")
def one_server_connection(committing_database: str) -> Iterator[PgBouncer]:
    with PgBouncer.running(committing_database, pool_size=1) as bouncer:
        yield bouncer


@pytest.mark.parametrize("db_pool", ["null", "single"])
async def test_requests_leave_no_prepared_statement_on_the_proxys_server_connection(
    app: FastAPI, engine: AsyncEngine, one_server_connection: PgBouncer, db_pool: Pool
) -> None:
    # given: the app behind PgBouncer, whose one server connection every request uses
    assert list((await one_server_connection.prepared_statements_by_server()).values()) == [[]]
    through_proxy = build_engine(
        get_settings(), database_url=one_server_connection.url(), pool=db_pool
    )
    set_engine(through_proxy)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            # when: a user registers, logs in and reads their profile again and again
            account = await register_and_login(client, prefix=f"prepared_{db_pool}")
            for _ in range(READS):
                response = await client.get("/api/users/me", headers=account.headers)
                assert response.status_code == 200, response.text
    finally:
        set_engine(engine)
        await through_proxy.dispose()

    # then: none of the statements those requests prepared is still on it
    left = await one_server_connection.prepared_statements_by_server()
    assert list(left.values()) == [[]], left
