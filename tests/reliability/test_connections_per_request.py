"""A request opens a database connection only once it needs the database, and sends
only the statements it needs.

On AWS every connection is a TLS handshake and an IAM-authenticated login at RDS
Proxy. Requests rejected before they reach a query (no or a bad token, an unknown
route, a validation error) must cost none, or an anonymous flood becomes a login
flood. Counted at the server: every connection it accepted (`connection received`),
whether or not it got as far as logging in. And every statement is a round trip to
the proxy: a read sends no BEGIN and no COMMIT around its query.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from lambda_app.db.engine import Pool
from lambda_app.identity.keyring import SigningKey
from lambda_app.identity.signing_key import current_signing_key
from lambda_app.identity.tokens import create_access_token
from tests.fixtures.accounts import Credentials, register_and_login
from tests.reliability.statement_log import StatementLoggedPostgres, statements

APPLICATION_NAME = "lambda_app.connections_test"


@contextlib.asynccontextmanager
async def _client_with_engine(  # type: ignore[no-untyped-def]
    app, engine, database_url: str, pool: Pool
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app on `database_url` with `pool`; the session's engine after."""
    from lambda_app.core.settings import get_settings
    from lambda_app.db.engine import build_engine, set_engine

    settings = get_settings().model_copy(update={"db_application_name": APPLICATION_NAME})
    scratch = build_engine(settings, database_url=database_url, pool=pool)
    set_engine(scratch)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
    finally:
        set_engine(engine)
        await scratch.dispose()


@pytest.fixture
async def client(  # type: ignore[no-untyped-def]
    app, engine, logged_api_database: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with _client_with_engine(app, engine, logged_api_database, "null") as client:
        yield client


def _token(*, key: SigningKey, lifetime: dt.timedelta) -> str:
    return create_access_token(
        user_id=1, token_version=0, session_id=uuid.uuid4(), key=key, lifetime=lifetime
    ).token


REJECTED_EARLY: dict[str, tuple[str, str, dict[str, Any]]] = {
    "no token": ("GET", "/api/users/me", {}),
    "malformed token": ("GET", "/api/users/me", {"headers": {"authorization": "Bearer x.y.z"}}),
    "not a bearer token": ("GET", "/api/users/me", {"headers": {"authorization": "Basic eDp5"}}),
    "unknown route": ("GET", "/api/no-such-route", {}),
    "validation error": ("POST", "/api/auth/register", {"json": {"username": ""}}),
    "unparseable JSON": (
        "POST",
        "/api/auth/register",
        {"content": b"{", "headers": {"content-type": "application/json"}},
    ),
}
STATUS = {"unknown route": 404, "validation error": 422, "unparseable JSON": 422}


async def test_requests_rejected_before_the_database_open_no_connection(
    client: httpx.AsyncClient, statement_logged_postgres: StatementLoggedPostgres
) -> None:
    key = current_signing_key()
    cases = {
        **REJECTED_EARLY,
        "forged token": (
            "GET",
            "/api/users/me",
            {
                "headers": {
                    "authorization": "Bearer "
                    + _token(
                        # the server's kid, another key
                        key=SigningKey(kid=key.kid, key="not-the-server-secret-0123456789abcdef"),
                        lifetime=dt.timedelta(minutes=5),
                    )
                }
            },
        ),
        "expired token": (
            "GET",
            "/api/users/me",
            {
                "headers": {
                    "authorization": "Bearer " + _token(key=key, lifetime=dt.timedelta(minutes=-5))
                }
            },
        ),
    }
    for case, (method, path, options) in cases.items():
        mark = statement_logged_postgres.mark()
        for _ in range(20):
            response = await client.request(method, path, **options)
            assert response.status_code == STATUS.get(case, 401), (case, response.text)
            assert "error" in response.json(), case
        opened = await statement_logged_postgres.connections_before_a_marker(since=mark)
        assert opened == [], f"{case}: {len(opened)} connection(s) for 20 rejected requests"


async def test_a_request_that_needs_the_database_opens_exactly_one(
    client: httpx.AsyncClient, statement_logged_postgres: StatementLoggedPostgres
) -> None:
    bearer = (await register_and_login(client)).headers
    for _ in range(5):
        mark = statement_logged_postgres.mark()
        me = await client.get("/api/users/me", headers=bearer)
        assert me.status_code == 200, me.text
        opened = statement_logged_postgres.connections_received(since=mark)
        logins = statement_logged_postgres.logins(since=mark, application_name=APPLICATION_NAME)
        assert len(opened) == len(logins) == 1, opened


def _sent(postgres: StatementLoggedPostgres, *, since: int) -> list[str]:
    entries = postgres.entries(since=since, application_name=APPLICATION_NAME)
    return [
        statement.text.lstrip().split(None, 1)[0].rstrip(";").upper()
        for statement in statements(entries)
    ]


async def test_a_read_sends_its_query_alone_and_a_write_one_transaction(
    client: httpx.AsyncClient, statement_logged_postgres: StatementLoggedPostgres
) -> None:
    account = await register_and_login(client)
    user_id = (await client.get("/api/users/me", headers=account.headers)).json()["id"]
    reads = ("/api/users/me", f"/api/users/{user_id}", "/api/health/ready")
    for method, path in [(method, path) for path in reads for method in ("GET", "HEAD")]:
        # when: a GET (or a HEAD, served as its GET) reads the caller and what it asked for
        mark = statement_logged_postgres.mark()
        response = await client.request(method, path, headers=account.headers)
        assert response.status_code == 200, response.text
        # then: the server saw the query, with no transaction around it
        assert set(_sent(statement_logged_postgres, since=mark)) == {"SELECT"}, (method, path)

    # a PATCH reads and writes in one transaction, committed once
    mark = statement_logged_postgres.mark()
    response = await client.patch("/api/users/me", json={"last_name": "Q"}, headers=account.headers)
    assert response.status_code == 200, response.text
    sent = _sent(statement_logged_postgres, since=mark)
    assert sent[0] == "BEGIN" and sent[-1] == "COMMIT" and "UPDATE" in sent, sent
    assert sent.count("BEGIN") == sent.count("COMMIT") == 1, sent


@pytest.fixture
async def one_connection_client(  # type: ignore[no-untyped-def]
    app, engine, logged_api_database: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    """The app keeping one connection (DB_POOL=single), and no other: a request that
    needed a second while holding it would wait for it and fail."""
    from lambda_app.core.settings import get_settings

    monkeypatch.setenv("REQUIRE_VERIFIED_EMAIL", "true")  # the 403 path sends a link
    get_settings.cache_clear()
    try:
        async with _client_with_engine(app, engine, logged_api_database, "single") as client:
            yield client
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


async def test_no_request_holds_two_connections_at_once(
    one_connection_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The paths that commit a transaction of their own as the request's ends: a failed
    # login's counter, the link sent with a login refused for an unverified email, and a
    # resent link. Behind RDS Proxy each would otherwise need two connections.
    from lambda_app.core.settings import get_settings

    client = one_connection_client
    credentials = Credentials.new("one_conn")
    registered = await client.post("/api/auth/register", json=credentials.registration())
    assert registered.status_code == 201, registered.text
    login = credentials.login_form()
    # a session the user started before verified emails were required
    monkeypatch.setenv("REQUIRE_VERIFIED_EMAIL", "false")
    get_settings.cache_clear()
    earlier = await client.post("/api/auth/token", data=login)
    assert earlier.status_code == 200, earlier.text
    monkeypatch.setenv("REQUIRE_VERIFIED_EMAIL", "true")
    get_settings.cache_clear()

    wrong = await client.post("/api/auth/token", data={**login, "password": "not it at all"})
    assert wrong.status_code == 401, wrong.text
    unknown = await client.post("/api/auth/token", data={**login, "username": "no_such_one"})
    assert unknown.status_code == 401, unknown.text
    unverified = await client.post("/api/auth/token", data=login)
    assert unverified.status_code == 403, unverified.text
    assert unverified.json()["error"]["code"] == "email_not_verified"

    # the unverified user can't log in now, but the session from before still works
    token = earlier.json()["access_token"]
    resent = await client.post(
        "/api/users/me/verify-email", headers={"authorization": f"Bearer {token}"}
    )
    assert resent.status_code == 202, resent.text
