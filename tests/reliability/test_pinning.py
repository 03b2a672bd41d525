"""Nothing the API sends to PostgreSQL would make RDS Proxy pin its session.

RDS Proxy multiplexes client sessions over few server connections until a client
changes session state: then it pins the session to one server connection until the
client hangs up (the statements are listed in `pinning_statements.py`). With
NullPool every request is one session, so one pinning statement on a common path
would pin a server connection per request in flight; with DB_POOL=single a container's
kept connection is one session for its whole life, so a pin would last as long.

The ground truth is a PostgreSQL of the session's own logging every statement with
its `application_name` (`statement_log.py`). Each test gives the app a name of its
own, connects as the API's least-privilege role, and reads back what it sent:
- the whole API surface (every operation of the OpenAPI schema, success and error
  paths; a route or a documented status added without a call here fails the test);
- a PostgreSQL enum column, which makes asyncpg look the type up (and, stock, wrap
  the lookup in `set_config('jit', ...)`: see `lambda_app.core.proxy_safe_connection`);
- the StartupMessage itself, on every connection plan: RDS Proxy accepts only a few
  startup parameters.

Exempt: the migration function. It connects to the instance directly, not through
the proxy, and pins on purpose (a session-level advisory lock, `set_config` for its
lock timeout); see `lambda_app.migrate.runner` and `lambda_app.handlers.migrate`.
"""

from __future__ import annotations

import contextlib
import enum
import inspect
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import boto3
import httpx
import pytest
from moto import mock_aws
from sqlalchemy import Column, MetaData, Table, insert, select, text
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from lambda_app.core.settings import ApiSettings, DbSslMode, get_settings
from lambda_app.db.engine import build_engine, get_engine, set_engine
from lambda_app.db.proxy_safe_connection import ProxySafeConnection
from lambda_app.devtools.database import prepare_api_role
from lambda_app.workload import API_ROLE
from tests.fixtures.mailbox import Mailbox
from tests.reliability.databases import asyncpg_dsn, insert_superuser
from tests.reliability.pinning_statements import pinning_reason, portal_pinning_reason
from tests.reliability.recording_relay import PROTOCOL_3_0, RecordingRelay
from tests.reliability.statement_log import (
    LogEntry,
    Statement,
    StatementLoggedPostgres,
    statements,
)

pytestmark = pytest.mark.slow

PASSWORD = "pinning test password"
# Low, so the throttled path (429) is three requests away.
LOGIN_MAX_FAILURES = 2
# Statuses only a failing database produces: tests/reliability/test_database_faults.py.
FAULT_STATUSES = {500, 503}
# Statuses only a race produces, by statements the operation's success sends too: a
# superuser deleting the last other one while being removed itself
# (tests/reliability/test_user_races.py).
RACE_STATUSES = {("/api/users/{user_id}", "delete"): {409}}
# What RDS Proxy accepts in a StartupMessage from the app: the login, the database,
# the client's encoding (asyncpg always sends it) and application_name. Anything else
# (`options`, `statement_timeout`, `jit`, `search_path`...) it refuses.
PROXY_SAFE_STARTUP_KEYS = {"user", "database", "client_encoding", "application_name"}


@contextlib.contextmanager
def _setting(name: str, value: str) -> Iterator[None]:
    """One setting changed for the routes (they read `get_settings()`), then put back."""
    saved = os.environ.get(name)
    os.environ[name] = value
    get_settings.cache_clear()
    try:
        yield
    finally:
        if saved is None:
            del os.environ[name]
        else:
            os.environ[name] = saved
        get_settings.cache_clear()


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def pinning_statements(found: list[Statement]) -> list[tuple[str, str]]:
    return [
        (reason, s.text[:300])
        for s in found
        if (reason := pinning_reason(s.text) or portal_pinning_reason(s.name))
    ]


# --- the detector, on its own ---------------------------------------------------------

PINNING = [
    "SET search_path TO public",
    "  set statement_timeout = 0",
    "SET LOCAL lock_timeout = '1s'",
    "/* a comment */ RESET ALL",
    "-- a comment\nDISCARD ALL",
    "SELECT set_config('jit', 'off', false)",
    "\n  SELECT\n    current_setting('jit') AS cur,\n    SET_CONFIG('jit', 'off', false) AS new\n",
    "PREPARE fetch_one AS SELECT 1",
    "EXECUTE fetch_one",
    "deallocate fetch_one",
    "LISTEN changes",
    "LOAD 'auto_explain'",
    "DECLARE users_cursor CURSOR WITH HOLD FOR SELECT id FROM users",
    "SELECT pg_advisory_lock(42)",
    "select pg_try_advisory_lock(42)",
    "SELECT pg_advisory_lock_shared(42)",
    "CREATE TEMP TABLE scratch (id int)",
    "create temporary sequence scratch_seq",
    "CREATE OR REPLACE TEMP VIEW recent AS SELECT 1",
    "CREATE GLOBAL TEMPORARY TABLE scratch (id int)",
    "SELECT id INTO TEMP scratch FROM users",
    "SELECT nextval('users_id_seq')",
    "SELECT setval('users_id_seq', 10)",
    "SELECT 1; SET jit = off",
    "(SET jit = off)",
    "SELECT '" + "x" * 16_400 + "'",
    "SELECT '" + "é" * 8_200 + "'",  # 8,200 characters, 16,400 bytes: the limit is bytes
]
NOT_PINNING = [
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SELECT 1",
    "SHOW standard_conforming_strings",
    "SELECT current_setting('jit')",
    "SELECT pg_advisory_xact_lock(42)",
    "SELECT pg_try_advisory_xact_lock(42)",
    "UPDATE users SET first_name = $1 WHERE users.id = $2",
    "INSERT INTO login_throttle (login) VALUES ($1) "
    "ON CONFLICT (login) DO UPDATE SET failures = login_throttle.failures + 1",
    "SELECT users.settings_json, users.reset_token FROM users",
    "SELECT '" + "x" * 16_000 + "'",
]


@pytest.mark.parametrize("sql", PINNING)
def test_detector_flags_pinning_statements(sql: str) -> None:
    assert pinning_reason(sql) is not None


@pytest.mark.parametrize("sql", NOT_PINNING)
def test_detector_passes_statements_that_do_not_pin(sql: str) -> None:
    assert pinning_reason(sql) is None


def test_protocol_level_prepared_statements_are_not_sql_level_ones() -> None:
    # given: asyncpg's extended-protocol execute, and SQL-level EXECUTE sent as a query
    logged = [
        LogEntry("app", 1, "LOG", "execute __asyncpg_0f3a_1__: SELECT users.id FROM users"),
        LogEntry("app", 1, "LOG", "execute <unnamed>: SELECT 1"),
        LogEntry("app", 1, "LOG", "statement: EXECUTE fetch_one"),
        LogEntry("app", 1, "LOG", "execute __asyncpg_0f3a_2__: SET jit = off"),
        # a protocol-level cursor (asyncpg's, under SQLAlchemy's stream()): a named portal
        LogEntry("app", 1, "LOG", "execute <unnamed>/__asyncpg_portal_1__: SELECT users.id"),
        LogEntry("app", 1, "LOG", "execute fetch from <unnamed>/__asyncpg_portal_1__: SELECT 2"),
    ]
    # when
    found = pinning_statements(statements(logged))
    # then: the last four pin, whatever the protocol that carried them
    assert [text for _, text in found] == [
        "EXECUTE fetch_one",
        "SET jit = off",
        "SELECT users.id",
        "SELECT 2",
    ]


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_url(logged_database: str) -> str:
    """The logged database as the API connects to it: its own role, not the owner."""
    return prepare_api_role(logged_database)


@pytest.fixture
def app_name() -> str:
    return _unique("pin")


@pytest.fixture
def logged_settings(app_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiSettings]:
    """The process-wide settings, with this test's application_name: routes read
    `get_settings()` themselves (the login throttle's limit, for one)."""
    monkeypatch.setenv("DB_APPLICATION_NAME", app_name)
    monkeypatch.setenv("LOGIN_MAX_FAILURES", str(LOGIN_MAX_FAILURES))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()  # before monkeypatch restores the environment


@pytest.fixture(params=["null", "single"])
async def logged_app(  # type: ignore[no-untyped-def]
    request: pytest.FixtureRequest,
    app,
    engine: AsyncEngine,
    api_url: str,
    logged_settings: ApiSettings,
):
    """The app, committing for real to the logged database, as the API role, with each
    DB_POOL: a kept connection (`single`) adds its ping and its return's ROLLBACK."""
    logged_engine = build_engine(logged_settings, database_url=api_url, pool=request.param)
    set_engine(logged_engine)
    try:
        yield app
    finally:
        set_engine(engine)
        await logged_engine.dispose()  # the kept connection, if any


# --- the whole API surface ------------------------------------------------------------


@dataclass
class SurfaceCalls:
    """Which operation of the OpenAPI schema each response answered, and with what status."""

    schema: dict[str, Any]
    statuses: dict[str, set[int]] = field(default_factory=dict)

    def _routes(self) -> list[tuple[re.Pattern[str], str, str]]:
        routes = []
        for path, operations in self.schema["paths"].items():
            pattern = "/".join(
                "[^/]+" if part.startswith("{") else re.escape(part) for part in path.split("/")
            )
            for method, operation in operations.items():
                routes.append(
                    (re.compile(f"^{pattern}$"), method.upper(), operation["operationId"])
                )
        # Literal paths first, as the router matches them: /users/me before /users/{user_id}.
        return sorted(routes, key=lambda route: route[0].pattern.count("[^/]+"))

    async def record(self, response: httpx.Response) -> None:
        request = response.request
        for pattern, method, operation_id in self._routes():
            if method == request.method and pattern.match(request.url.path):
                self.statuses.setdefault(operation_id, set()).add(response.status_code)
                return

    def expected(self) -> dict[str, set[int]]:
        """Every documented status of every operation, but those a request can't reach
        through this operation: fault statuses, race statuses, 413 without a body, 422
        without input."""
        wanted = {}
        for path, operations in self.schema["paths"].items():
            for method, operation in operations.items():
                statuses = {int(code) for code in operation["responses"]} - FAULT_STATUSES
                statuses -= RACE_STATUSES.get((path, method), set())
                has_body = "requestBody" in operation
                if not has_body:
                    statuses.discard(413)
                if not has_body and not operation.get("parameters"):
                    statuses.discard(422)
                wanted[operation["operationId"]] = statuses
        return wanted


@dataclass
class Api:
    """The test's client: each call states the status it must get."""

    client: httpx.AsyncClient

    async def expect(self, status: int, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = await self.client.request(method, url, **kwargs)
        assert response.status_code == status, f"{method} {url}: {response.text[:500]}"
        return response

    async def bearer(self, username: str, password: str = PASSWORD) -> dict[str, str]:
        form = {"username": username, "password": password}
        token = (await self.expect(200, "POST", "/api/auth/token", data=form)).json()
        return {"Authorization": f"Bearer {token['access_token']}"}


async def _exercise_the_surface(api: Api, owner_url: str, settings: ApiSettings) -> None:
    """Every operation, each documented outcome a client can cause, as the app's users would."""
    tag = uuid.uuid4().hex[:8]
    alice, bob, carol, admin = (f"pin_{name}_{tag}" for name in ("alice", "bob", "carol", "admin"))
    too_big = "x" * (settings.max_request_body_bytes + 1)
    anonymous: dict[str, str] = {}
    bad_token = {"Authorization": "Bearer not-a-token"}
    new_password = f"{PASSWORD} 2"
    as_text = {"content-type": "text/plain"}  # a JSON body sent as another media type: 415

    # health: liveness, then readiness (the one that touches the database)
    await api.expect(200, "GET", "/api/health")
    await api.expect(200, "GET", "/api/health/ready")
    await api.expect(200, "HEAD", "/api/health")  # as uptime monitors probe
    await api.expect(200, "HEAD", "/api/health/ready")

    register = "/api/auth/register"
    for name in (alice, bob, carol):
        account = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
        await api.expect(201, "POST", register, json=account)
    taken = {"username": alice, "email": f"other_{tag}@example.com", "password": PASSWORD}
    await api.expect(409, "POST", register, json=taken)
    await api.expect(422, "POST", register, json={"username": "x"})
    await api.expect(413, "POST", register, json={**taken, "password": too_big})
    await api.expect(415, "POST", register, content=json.dumps(taken), headers=as_text)

    # token: good and bad password, incomplete and oversized forms, throttled
    token = "/api/auth/token"
    alice_h = await api.bearer(alice)
    await api.expect(401, "POST", token, data={"username": alice, "password": "wrong password"})
    await api.expect(422, "POST", token, data={"username": alice})
    await api.expect(413, "POST", token, data={"username": alice, "password": too_big})
    await api.expect(415, "POST", token, json={"username": alice, "password": PASSWORD})
    unparsable = {"content-type": "multipart/form-data"}  # no boundary
    await api.expect(400, "POST", token, content=b"username=x", headers=unparsable)
    nobody = {"username": f"pin_nobody_{tag}", "password": "guess"}
    for _ in range(LOGIN_MAX_FAILURES):
        await api.expect(401, "POST", token, data=nobody)
    await api.expect(429, "POST", token, data=nobody)

    # sessions: refresh (rotated, replayed, malformed, oversized), then log out
    refresh, logout = "/api/auth/refresh", "/api/auth/logout"
    form = {"username": bob, "password": PASSWORD}
    first = (await api.expect(200, "POST", token, data=form)).json()["refresh_token"]
    await api.expect(200, "POST", refresh, json={"refresh_token": first})
    await api.expect(401, "POST", refresh, json={"refresh_token": first})  # replayed
    await api.expect(422, "POST", refresh, json={"refresh_token": ""})
    await api.expect(413, "POST", refresh, json={"refresh_token": too_big})
    await api.expect(415, "POST", refresh, content=b"{}", headers=as_text)
    await api.expect(204, "POST", logout, json={"refresh_token": first})
    await api.expect(422, "POST", logout, json={})
    await api.expect(413, "POST", logout, json={"refresh_token": too_big})
    await api.expect(415, "POST", logout, content=b"{}", headers=as_text)

    # account emails: the registration's verification link, resending, requiring it
    mailbox, verify_subject = Mailbox(), "Verify your email address"
    verify, resend = "/api/auth/verify-email", "/api/users/me/verify-email"
    carol_link = mailbox.last_to(f"{carol}@example.com", verify_subject)
    await api.expect(204, "POST", verify, json={"token": carol_link.token})
    await api.expect(400, "POST", verify, json={"token": carol_link.token})  # used
    await api.expect(422, "POST", verify, json={})
    await api.expect(413, "POST", verify, json={"token": too_big})
    await api.expect(415, "POST", verify, content=b"{}", headers=as_text)
    for _ in range(settings.account_emails_per_hour - 1):  # the registration sent one
        await api.expect(202, "POST", resend, headers=alice_h)
    await api.expect(429, "POST", resend, headers=alice_h)
    await api.expect(409, "POST", resend, headers=await api.bearer(carol))  # verified
    await api.expect(401, "POST", resend, headers=anonymous)
    with _setting("REQUIRE_VERIFIED_EMAIL", "true"):
        await api.expect(403, "POST", token, data={"username": bob, "password": PASSWORD})

    # password recovery: ask (the same answer for anyone), reset, replay
    recovery, reset = "/api/auth/password-recovery", "/api/auth/reset-password"
    await api.expect(202, "POST", recovery, json={"email": f"{bob}@example.com"})
    await api.expect(202, "POST", recovery, json={"email": f"pin_nobody_{tag}@example.com"})
    await api.expect(422, "POST", recovery, json={"email": "not an address"})
    await api.expect(413, "POST", recovery, json={"email": too_big})
    await api.expect(415, "POST", recovery, content=b"{}", headers=as_text)
    reset_link = mailbox.last_to(f"{bob}@example.com", "Reset your password")
    bob_reset = {"token": reset_link.token, "new_password": PASSWORD}
    await api.expect(204, "POST", reset, json=bob_reset)
    await api.expect(400, "POST", reset, json=bob_reset)  # used
    await api.expect(422, "POST", reset, json={**bob_reset, "new_password": "short"})
    await api.expect(413, "POST", reset, json={**bob_reset, "new_password": too_big})
    await api.expect(415, "POST", reset, content=b"{}", headers=as_text)

    # me: read, update, change the password
    me, password = "/api/users/me", "/api/users/me/password"
    alice_id = (await api.expect(200, "GET", me, headers=alice_h)).json()["id"]
    await api.expect(401, "GET", me, headers=anonymous)
    await api.expect(401, "GET", me, headers=bad_token)
    await api.expect(200, "PATCH", me, json={"first_name": "Alice"}, headers=alice_h)
    await api.expect(409, "PATCH", me, json={"username": bob}, headers=alice_h)
    await api.expect(422, "PATCH", me, json={"no_such_field": 1}, headers=alice_h)
    await api.expect(413, "PATCH", me, json={"first_name": too_big}, headers=alice_h)
    await api.expect(415, "PATCH", me, content=b"{}", headers={**alice_h, **as_text})
    await api.expect(401, "PATCH", me, json={"first_name": "A"}, headers=anonymous)
    wrong = {"current_password": "wrong password", "new_password": new_password}
    right = {"current_password": PASSWORD, "new_password": new_password}
    # A login that works forgets alice's failed one above: with a limit of 2, that and the
    # wrong current password below would otherwise use up her account's guesses.
    alice_h = await api.bearer(alice)
    await api.expect(400, "POST", password, json=wrong, headers=alice_h)
    await api.expect(422, "POST", password, json={}, headers=alice_h)
    await api.expect(415, "POST", password, content=b"{}", headers={**alice_h, **as_text})
    await api.expect(
        413, "POST", password, json={**right, "new_password": too_big}, headers=alice_h
    )
    await api.expect(401, "POST", password, json=right, headers=anonymous)
    await api.expect(204, "POST", password, json=right, headers=alice_h)
    await api.expect(401, "GET", me, headers=alice_h)  # the change revoked older tokens
    alice_h = await api.bearer(alice, new_password)
    # a new email needs the current password, checked and limited as a password change's
    moved, back = {"email": f"moved_{alice}@example.com"}, {"email": f"{alice}@example.com"}
    await api.expect(422, "PATCH", me, json=moved, headers=alice_h)
    await api.expect(
        200, "PATCH", me, json={**moved, "current_password": new_password}, headers=alice_h
    )
    await api.expect(400, "PATCH", me, json={**back, "current_password": "wrong"}, headers=alice_h)
    for _ in range(LOGIN_MAX_FAILURES - 1):  # guessing the current password is limited too
        await api.expect(400, "POST", password, json=wrong, headers=alice_h)
    await api.expect(429, "POST", password, json=wrong, headers=alice_h)
    await api.expect(
        429, "PATCH", me, json={**back, "current_password": new_password}, headers=alice_h
    )

    # user management, as a superuser and as an ordinary user
    await insert_superuser(owner_url, admin, PASSWORD)
    admin_h = await api.bearer(admin)
    admin_id = (await api.expect(200, "GET", me, headers=admin_h)).json()["id"]
    carol_id = (await api.expect(200, "GET", me, headers=await api.bearer(carol))).json()["id"]
    users, missing = "/api/users", "/api/users/2147483647"
    await api.expect(200, "GET", users, headers=admin_h)
    await api.expect(403, "GET", users, headers=alice_h)
    await api.expect(401, "GET", users, headers=anonymous)
    await api.expect(422, "GET", users, params={"limit": 0}, headers=admin_h)

    await api.expect(200, "GET", f"{users}/{alice_id}", headers=alice_h)  # her own
    await api.expect(404, "GET", f"{users}/{admin_id}", headers=alice_h)  # another's
    await api.expect(200, "GET", f"{users}/{alice_id}", headers=admin_h)
    await api.expect(404, "GET", missing, headers=admin_h)
    await api.expect(422, "GET", f"{users}/abc", headers=alice_h)
    await api.expect(401, "GET", f"{users}/{admin_id}", headers=anonymous)

    alice_url, change = f"{users}/{alice_id}", {"last_name": "Smith"}
    await api.expect(200, "PATCH", alice_url, json=change, headers=admin_h)
    await api.expect(404, "PATCH", missing, json=change, headers=admin_h)
    await api.expect(403, "PATCH", alice_url, json=change, headers=alice_h)
    await api.expect(409, "PATCH", alice_url, json={"username": bob}, headers=admin_h)
    await api.expect(422, "PATCH", alice_url, json={"is_active": "maybe"}, headers=admin_h)
    await api.expect(413, "PATCH", alice_url, json={"last_name": too_big}, headers=admin_h)
    await api.expect(415, "PATCH", alice_url, content=b"{}", headers={**admin_h, **as_text})
    await api.expect(401, "PATCH", alice_url, json=change, headers=anonymous)

    carol_url = f"{users}/{carol_id}"
    await api.expect(403, "DELETE", carol_url, headers=alice_h)  # not a superuser
    await api.expect(403, "DELETE", f"{users}/{admin_id}", headers=admin_h)  # oneself
    await api.expect(401, "DELETE", carol_url, headers=anonymous)
    await api.expect(204, "DELETE", carol_url, headers=admin_h)
    await api.expect(404, "DELETE", carol_url, headers=admin_h)
    await api.expect(422, "DELETE", f"{users}/0", headers=admin_h)
    # logging out everywhere: oneself, and a superuser anyone (both lock the user's row)
    bob_h = await api.bearer(bob)
    bob_id = (await api.expect(200, "GET", me, headers=bob_h)).json()["id"]
    await api.expect(204, "DELETE", f"{me}/sessions", headers=bob_h)
    await api.expect(401, "DELETE", f"{me}/sessions", headers=bob_h)  # that ended this one too
    bob_sessions = f"{users}/{bob_id}/sessions"
    await api.expect(204, "DELETE", bob_sessions, headers=admin_h)
    await api.expect(403, "DELETE", bob_sessions, headers=alice_h)
    await api.expect(401, "DELETE", bob_sessions, headers=anonymous)
    await api.expect(404, "DELETE", f"{missing}/sessions", headers=admin_h)
    await api.expect(422, "DELETE", f"{users}/0/sessions", headers=admin_h)
    # one's own password only through /users/me; a deactivation locks the superusers' rows
    own = {"password": new_password}
    await api.expect(403, "PATCH", f"{users}/{admin_id}", json=own, headers=admin_h)
    await api.expect(200, "PATCH", alice_url, json={"is_active": False}, headers=admin_h)

    # outside the schema: an unknown route, a wrong method, the docs
    await api.expect(404, "GET", "/api/nothing-here")
    await api.expect(405, "PUT", "/api/health")
    await api.expect(200, "GET", "/api/openapi.json")
    await api.expect(200, "GET", "/api/doc")


async def test_the_whole_api_surface_sends_nothing_that_pins(
    logged_app: Any,
    statement_logged_postgres: StatementLoggedPostgres,
    logged_database: str,
    logged_settings: ApiSettings,
    app_name: str,
) -> None:
    # given
    calls = SurfaceCalls(logged_app.openapi())
    mark = statement_logged_postgres.mark()
    transport = httpx.ASGITransport(app=logged_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", event_hooks={"response": [calls.record]}
    ) as client:
        # when
        await _exercise_the_surface(Api(client), logged_database, logged_settings)

    # then: every operation, with every status it documents, was called
    missing = {
        operation_id: sorted(wanted - calls.statuses.get(operation_id, set()))
        for operation_id, wanted in calls.expected().items()
        if not wanted <= calls.statuses.get(operation_id, set())
    }
    assert missing == {}, f"operations or documented statuses never exercised: {missing}"
    # ... the log holds the app's traffic (a wrong filter would find nothing to object to)
    entries = statement_logged_postgres.entries(since=mark, application_name=app_name)
    sent = statements(entries)
    assert any(s.text.startswith("INSERT INTO users") for s in sent), sent[:5]
    assert any("login_throttle" in s.text for s in sent), sent[:5]
    # ... through the pool under test: a backend per request, or one kept for them all
    backends = {entry.pid for entry in entries}
    if isinstance(get_engine().pool, NullPool):
        assert len(backends) > len(calls.statuses), len(backends)
    else:
        assert len(backends) == 1, len(backends)
    # ... and none of it pins
    assert pinning_statements(sent) == []


# --- PostgreSQL enum columns ----------------------------------------------------------


class Mood(enum.Enum):
    CALM = "calm"
    TENSE = "tense"


async def _owner_execute(owner_url: str, *sql: str) -> None:
    conn = await asyncpg.connect(**asyncpg_dsn(owner_url))
    try:
        for statement in sql:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture
async def enum_table(logged_database: str) -> AsyncIterator[Table]:
    """A test-only enum type and a table using it, made by the owner, granted to the API."""
    type_name, table_name = _unique("pin_mood"), _unique("pin_moods")
    values = ", ".join(f"'{mood.value}'" for mood in Mood)
    await _owner_execute(
        logged_database,
        f"CREATE TYPE {type_name} AS ENUM ({values})",
        f"CREATE TABLE {table_name} (mood {type_name} NOT NULL)",
        f"GRANT SELECT, INSERT ON {table_name} TO {API_ROLE}",
    )
    column_type = SqlEnum(
        Mood,
        name=type_name,
        values_callable=lambda kind: [m.value for m in kind],
        create_type=False,
    )
    table = Table(table_name, MetaData(), Column("mood", column_type, nullable=False))
    try:
        yield table
    finally:
        await _owner_execute(
            logged_database,
            f"DROP TABLE IF EXISTS {table_name}",
            f"DROP TYPE IF EXISTS {type_name}",
        )


def _lookups(sent: list[Statement]) -> list[Statement]:
    # asyncpg's type lookup query (asyncpg.introspection.INTRO_LOOKUP_TYPES)
    return [s for s in sent if "typeinfo_tree" in s.text]


async def test_enum_columns_send_nothing_that_pins(
    enum_table: Table,
    api_url: str,
    statement_logged_postgres: StatementLoggedPostgres,
    app_name: str,
) -> None:
    # given: the app's own engine (every connection new, as with NullPool in production)
    engine = build_engine(ApiSettings(db_application_name=app_name), database_url=api_url)
    mark = statement_logged_postgres.mark()
    # when: an enum value goes in as a parameter and comes out as a column
    async with engine.begin() as conn:
        await conn.execute(insert(enum_table), [{"mood": Mood.CALM}, {"mood": Mood.TENSE}])
    async with engine.connect() as conn:
        found = (
            await conn.execute(select(enum_table.c.mood).where(enum_table.c.mood == Mood.TENSE))
        ).all()
    await engine.dispose()

    # then: the values round-trip...
    assert found == [(Mood.TENSE,)]
    sent = statements(statement_logged_postgres.entries(since=mark, application_name=app_name))
    # ... asyncpg really looked the type up, once per connection...
    assert len(_lookups(sent)) == 2, [s.text[:80] for s in sent]
    # ... and nothing of it pins
    assert pinning_statements(sent) == []


async def test_a_streamed_result_is_seen_as_the_cursor_it_is(
    api_url: str, statement_logged_postgres: StatementLoggedPostgres, app_name: str
) -> None:
    """The detector's cursor rule, against what the server really logs: the app streams
    nothing today, and this keeps a future `stream()` or `yield_per` from slipping by."""
    # given: the app's own engine
    engine = build_engine(ApiSettings(db_application_name=app_name), database_url=api_url)
    mark = statement_logged_postgres.mark()
    # when: a result is streamed (a server-side cursor: a named portal, fetched from)
    async with engine.connect() as conn:
        result = await conn.stream(
            text("SELECT n FROM generate_series(1, 5) AS n").execution_options(yield_per=2)
        )
        streamed = [row.n async for row in result]
    await engine.dispose()

    # then
    assert streamed == [1, 2, 3, 4, 5]
    sent = statements(statement_logged_postgres.entries(since=mark, application_name=app_name))
    reasons = [reason for reason, text in pinning_statements(sent) if "generate_series" in text]
    assert reasons and set(reasons) == {"cursor (a named portal)"}, sent


async def test_stock_asyncpg_still_toggles_jit_around_type_lookups(
    enum_table: Table,
    api_url: str,
    statement_logged_postgres: StatementLoggedPostgres,
    app_name: str,
) -> None:
    """The reason for `ProxySafeConnection`. When this fails, asyncpg stopped calling
    set_config itself: the adapter can go (and the enum test above still guards)."""
    # given
    mark = statement_logged_postgres.mark()
    conn = await asyncpg.connect(
        **asyncpg_dsn(api_url),
        statement_cache_size=0,
        server_settings={"application_name": app_name},
    )
    # when
    try:
        await conn.fetch(f"SELECT mood FROM {enum_table.name}")  # noqa: S608 - our name
    finally:
        await conn.close()
    # then
    sent = statements(statement_logged_postgres.entries(since=mark, application_name=app_name))
    assert len(_lookups(sent)) == 1
    assert {reason for reason, _ in pinning_statements(sent)} == {"set_config()"}


async def test_the_switch_the_adapter_flips_is_still_asyncpgs(api_url: str) -> None:
    """`ProxySafeConnection` relies on asyncpg 0.32's `_introspect_types(typeoids, timeout)`
    consulting `Connection._server_caps.jit`, a `ServerCapabilities` field."""
    assert "jit" in asyncpg.connection.ServerCapabilities._fields
    parameters = list(inspect.signature(asyncpg.Connection._introspect_types).parameters)
    assert parameters == ["self", "typeoids", "timeout"]
    assert "self._server_caps.jit" in inspect.getsource(asyncpg.Connection._introspect_types)

    stock = await asyncpg.connect(**asyncpg_dsn(api_url))
    adapted = await asyncpg.connect(
        **asyncpg_dsn(api_url),
        connection_class=ProxySafeConnection,
    )
    try:
        assert stock._server_caps.jit is True  # PostgreSQL 11 or later
        # Only the jit switch differs: the capabilities asyncpg uses elsewhere stay.
        assert adapted._server_caps == stock._server_caps._replace(jit=False)
    finally:
        await stock.close()
        await adapted.close()


# --- the StartupMessage ---------------------------------------------------------------

PLANS = ("database_url", "iam_auth", "secrets_manager")


@pytest.fixture
def aws_in_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """AWS without the network: fake credentials and a region (IAM tokens are signed
    locally; no profile, config file or instance metadata is read) and moto's Secrets
    Manager in process."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield


def _engine_through(plan: str, relay_port: int, api_url: str, app_name: str) -> AsyncEngine:
    """The app's engine for one connection plan, dialling the relay."""
    url = make_url(api_url)
    if plan == "database_url":
        relayed = url.set(host="127.0.0.1", port=relay_port)
        return build_engine(
            ApiSettings(
                database_url=relayed.render_as_string(hide_password=False),
                db_application_name=app_name,
            )
        )
    # The AWS plans encrypt in production; the relay can only read a plain startup, and
    # TLS wraps the same message without changing it.
    aws: dict[str, Any] = {
        "database_url": None,
        "db_ssl": DbSslMode.DISABLE,
        "db_application_name": app_name,
    }
    if plan == "iam_auth":
        # A real token, signed locally; the test server trusts loopback and ignores it.
        return build_engine(
            ApiSettings(
                **aws,
                db_iam_auth=True,
                db_host="127.0.0.1",
                db_port=relay_port,
                db_name=url.database,
                db_user=url.username,
            )
        )
    # The plan's own fetcher reads the secret (from moto).
    secret = {
        "username": url.username,
        "password": url.password,
        "host": "127.0.0.1",
        "port": relay_port,
        "dbname": url.database,
        "engine": "postgres",
    }
    arn = boto3.client("secretsmanager").create_secret(
        Name=_unique("pin-db"), SecretString=json.dumps(secret)
    )["ARN"]
    return build_engine(ApiSettings(**aws, db_secret_arn=arn))


@pytest.mark.parametrize("plan", PLANS)
async def test_connections_send_only_the_startup_parameters_rds_proxy_accepts(
    plan: str,
    api_url: str,
    statement_logged_postgres: StatementLoggedPostgres,
    app_name: str,
    aws_in_process: None,
) -> None:
    # given: the app's engine for the plan, dialling the server through the relay
    target = make_url(api_url)
    assert target.host is not None and target.port is not None
    async with RecordingRelay(target.host, target.port) as relay:
        engine = _engine_through(plan, relay.port, api_url, app_name)
        # when
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT current_user")) == API_ROLE
            raw = await conn.get_raw_connection()
            # The enum fix reaches this plan too (the enum test runs on the URL plan). Not
            # isinstance: asyncpg's metaclass makes every Connection pass it for any subclass.
            assert type(raw.driver_connection) is ProxySafeConnection
        await engine.dispose()

    # then: one connection, protocol 3.0, exactly the accepted parameters, once each
    [startup] = relay.startups
    assert startup.protocol == PROTOCOL_3_0
    names = [name for name, _ in startup.parameters]
    assert len(names) == len(set(names)), names
    assert set(names) == PROXY_SAFE_STARTUP_KEYS
    parameters = dict(startup.parameters)
    assert parameters["application_name"] == app_name
    assert parameters["user"] == API_ROLE
    assert parameters["database"] == target.database
