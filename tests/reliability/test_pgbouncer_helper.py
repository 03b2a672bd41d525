"""The PgBouncer helper signs in to the server as the URL it is given says.

`make test` may run against a server of the developer's own (DATABASE_URL), which asks
for a password and need not have a `postgres` role: PgBouncer logs in to it with the
URL's user and password, and its clients connect to PgBouncer as that user.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy.engine import make_url

from lambda_app.devtools.embedded_postgres import EmbeddedPostgres
from tests.reliability.databases import asyncpg_dsn, execute, fetchval
from tests.reliability.pgbouncer import AdminConsole, PgBouncer

ROLE, PASSWORD = "bouncer_owner", "a password with 'quotes' and \"doubles\""


async def test_it_signs_in_with_the_urls_user_and_password(
    dedicated_postgres: EmbeddedPostgres,
) -> None:
    # given: a superuser with a password, and a server that asks everyone for one
    server_url = dedicated_postgres.url()
    quoted = PASSWORD.replace("'", "''")
    await execute(server_url, f"CREATE ROLE {ROLE} LOGIN SUPERUSER PASSWORD '{quoted}'")
    url = make_url(server_url).set(username=ROLE, password=PASSWORD)
    url = url.render_as_string(hide_password=False)
    hba = dedicated_postgres.pgdata / "pg_hba.conf"
    trusting = hba.read_text()
    hba.write_text("host all all 127.0.0.1/32 scram-sha-256\n")
    try:
        await fetchval(server_url, "SELECT pg_reload_conf()")
        assert await fetchval(url, "SELECT current_user") == ROLE  # the URL is right

        # when: PgBouncer is put in front of it
        with PgBouncer.running(url, pool_size=1) as bouncer:
            # then: its clients get in, as the URL's user, and so does its admin console
            dsn = asyncpg_dsn(bouncer.url())
            client = await asyncpg.connect(**dsn, statement_cache_size=0)  # type: ignore[arg-type]
            try:
                assert await client.fetchval("SELECT current_user") == ROLE
            finally:
                await client.close()
            assert list((await bouncer.prepared_statements_by_server()).values()) == [[]]
            with AdminConsole(bouncer.port, user=bouncer.user) as console:
                assert console.query("SHOW VERSION")
            # ... and the password is nowhere in what it logs
            assert PASSWORD not in bouncer.log_text()
    finally:
        hba.write_text(trusting)
        await execute(url, "SELECT pg_reload_conf()")
