"""TLS named in a DATABASE_URL (`?ssl=verify-full`), to a TLS-terminating proxy.

Given the mode as a string, asyncpg would build its TLS context, root certificates
read from disk included, for every connection: every request, with NullPool. The
engine builds it once (`lambda_app.db.tls.url_ssl_argument`), by asyncpg's own rules.
These tests check that it still verifies what the mode says it does, and that the
connections of one engine really share the context built when the engine was made.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from lambda_app.core.settings import get_settings
from lambda_app.db.engine import build_engine
from lambda_app.db.plan import DatabaseNotConfigured
from tests.reliability.pgbouncer import PgBouncer, self_signed_certificate


def _url(bouncer: PgBouncer, mode: str) -> str:
    # The proxy's certificate names localhost, which verify-full checks against this host.
    return f"{bouncer.url().replace('127.0.0.1', 'localhost')}?ssl={mode}"


async def _select_one(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:  # NullPool: a new connection
        return int((await conn.execute(text("SELECT 1"))).scalar_one())


async def test_verify_full_from_the_url_reads_its_root_certificate_once_per_engine(
    tls_pgbouncer: PgBouncer, user_tls_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an engine for a URL with ssl=verify-full, trusting the proxy's certificate
    monkeypatch.setenv("PGSSLROOTCERT", str(tls_pgbouncer.tls_certificate))
    engine = build_engine(get_settings(), database_url=_url(tls_pgbouncer, "verify-full"))
    try:
        assert await _select_one(engine) == 1
        # when the root certificate is gone after the engine was made
        monkeypatch.setenv("PGSSLROOTCERT", str(user_tls_home / "gone.pem"))
        # then its new connections still verify with the one it read, where asyncpg given
        # the mode would read the file again for each, and fail
        for _ in range(2):
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
                assert all(client["tls"] for client in tls_pgbouncer.app_clients())
    finally:
        await engine.dispose()
    # and a new engine reads the setting again, and names what is wrong
    with pytest.raises(DatabaseNotConfigured, match=r"ssl=verify-full.*PGSSLROOTCERT"):
        build_engine(get_settings(), database_url=_url(tls_pgbouncer, "verify-full"))


async def test_verify_full_from_the_url_refuses_a_server_its_root_does_not_sign(
    tls_pgbouncer: PgBouncer, user_tls_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a root certificate of some other CA than the one that signed the proxy's
    other_root = user_tls_home / "other-root.pem"
    other_root.write_bytes(self_signed_certificate("localhost")[1])
    monkeypatch.setenv("PGSSLROOTCERT", str(other_root))
    engine = build_engine(get_settings(), database_url=_url(tls_pgbouncer, "verify-full"))
    try:
        # when / then
        with pytest.raises(Exception, match="certificate verify failed"):
            await _select_one(engine)
    finally:
        await engine.dispose()


async def test_verify_full_from_the_url_refuses_a_host_name_its_certificate_lacks(
    tls_pgbouncer: PgBouncer, user_tls_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the proxy's own root, but dialled as 127.0.0.1, which its certificate doesn't name
    monkeypatch.setenv("PGSSLROOTCERT", str(tls_pgbouncer.tls_certificate))
    url = _url(tls_pgbouncer, "verify-full").replace("localhost", "127.0.0.1")
    engine = build_engine(get_settings(), database_url=url)
    try:
        # when / then
        with pytest.raises(Exception, match=r"[Hh]ostname mismatch|IP address mismatch"):
            await _select_one(engine)
    finally:
        await engine.dispose()
    # and verify-ca, which checks the chain only, connects the same way
    engine = build_engine(get_settings(), database_url=url.replace("verify-full", "verify-ca"))
    try:
        assert await _select_one(engine) == 1
    finally:
        await engine.dispose()


async def test_require_from_the_url_encrypts_without_verifying(
    tls_pgbouncer: PgBouncer, user_tls_home: Path
) -> None:
    # given no root certificate anywhere: libpq's require encrypts without verifying
    engine = build_engine(get_settings(), database_url=_url(tls_pgbouncer, "require"))
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
            [client] = tls_pgbouncer.app_clients()
            assert client["tls"], "the connection to the proxy is not encrypted"
    finally:
        await engine.dispose()
