"""Prepared statements behind a transaction-pooling proxy: none outlives its request,
and each is executed where it was just parsed.

Behind a transaction-pooling proxy (RDS Proxy, PgBouncer) a named prepared statement
stays on the server connection that prepared it after the client has gone, in that
backend's memory, for as long as the proxy keeps the connection: a slow leak of about
10 KB per request, which no error ever reports. Behind a PgBouncer with a single server
connection, every request goes through that one, so whatever they left there is counted.

The app's statements are all the unnamed one instead, and a read runs outside a
transaction. There a proxy may give the client another server connection at any Sync,
and asyncpg prepares a statement and executes it in two round trips (a type lookup it
may run between them ends with a Sync). With its statement cache off it sends the
statement's Parse again with its Bind, which a relay's record of the messages shows.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from lambda_app.core.settings import get_settings
from lambda_app.db.engine import Pool, build_engine, set_engine
from tests.fixtures.accounts import Credentials, login, register_and_login
from tests.reliability.databases import insert_superuser
from tests.reliability.pgbouncer import PgBouncer
from tests.reliability.recording_relay import Message, relayed

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


def _round_trips(sent: list[Message]) -> list[list[Message]]:
    """`sent` cut after each Flush and Sync: where the client waits for the server, and so
    where a proxy could hand the server connection to another client meanwhile."""
    trips: list[list[Message]] = [[]]
    for message in sent:
        trips[-1].append(message)
        if message.type in ("H", "S"):
            trips.append([])
    return [trip for trip in trips if trip]


def _executed(trip: list[Message]) -> list[str]:
    """The queries a round trip executes: each Bind's, which must be parsed in that trip."""
    executed, parsed = [], None
    for message in trip:
        if message.type == "P":
            parsed = message.query
        elif message.type == "B":
            assert parsed is not None, f"a Bind with no Parse in its round trip: {trip}"
            executed.append(parsed)
    return executed


async def test_each_read_statement_carries_its_own_parse_to_whichever_server_connection(
    app: FastAPI, engine: AsyncEngine, committing_database: str
) -> None:
    # given: the app dialling its database through a relay that records what it sends
    async with relayed(committing_database) as (relay, relayed_url):
        through_relay = build_engine(get_settings(), database_url=relayed_url)
        set_engine(through_relay)
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                # a superuser: only one may read another user
                reader = Credentials.new("wire_admin")
                await insert_superuser(committing_database, reader.username, reader.password)
                reader_headers = await login(c, reader.username, reader.password)
                other = await register_and_login(c, prefix="wire_other")
                other_id = (await c.get("/api/users/me", headers=other.headers)).json()["id"]
                before = len(relay.sent)
                # when: a GET reads the caller, and one reads the caller and another user
                me = await c.get("/api/users/me", headers=reader_headers)
                assert me.status_code == 200, me.text
                by_id = await c.get(f"/api/users/{other_id}", headers=reader_headers)
                assert by_id.json()["username"] == other.username, by_id.text
        finally:
            set_engine(engine)
            await through_relay.dispose()
    reads = relay.sent[before:]

    # then: one connection per request, with no BEGIN or COMMIT (simple queries), and
    # every Bind in the same round trip as a Parse of its statement: whichever server
    # connection a proxy gives that round trip, it runs what it has just parsed
    assert len(reads) == 2, reads
    executed = [[q for trip in _round_trips(sent) for q in _executed(trip)] for sent in reads]
    assert [m for sent in reads for m in sent if m.type == "Q"] == []
    assert [len(queries) for queries in executed] == [1, 2], executed
    assert all("FROM users" in query for queries in executed for query in queries), executed
