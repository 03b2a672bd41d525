"""Time limits that hold when the client's own can't: the server's for the API role
(migration 0005), since behind RDS Proxy a cancel request may never arrive and a Lambda
killed at its timeout sends none; and the invocation's deadline, answered with a 503
before Lambda's timeout ends the invocation. These commit for real, in a database of this
module's own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import text

from lambda_app.auth.router import RECOVERY_ACCEPTED
from lambda_app.core import metrics
from lambda_app.core.deadline import DEADLINE_MARGIN_SECONDS
from lambda_app.core.settings import get_settings
from lambda_app.db.engine import build_engine, set_engine
from lambda_app.devtools.database import prepare_api_role
from lambda_app.handlers.api import make_handler
from lambda_app.identity.password_attempts import login_key
from lambda_app.workload import API_ROLE
from tests.fixtures.accounts import Credentials
from tests.fixtures.lambda_context import FakeLambdaContext
from tests.fixtures.lambda_events import http_api_event
from tests.fixtures.polling import wait_until
from tests.reliability.databases import execute, fetchval

pytestmark = pytest.mark.slow

# Test-only: the INSERT of a registration for a `sleep_*` username sleeps far longer than
# the server allows this database's API role, and far shorter than the client's command
# timeout (10 s by default), so only the server can be what ends it. (Not at COMMIT:
# PostgreSQL's statement_timeout doesn't cover the work a COMMIT does.)
SERVER_STATEMENT_TIMEOUT = "1s"
SLEEP_SECONDS = 5


@contextlib.contextmanager
def _sleeping_writes(
    database_url: str, table: str, when: str, seconds: float, *, at_commit: bool
) -> Iterator[str]:
    """Inserting a row of `table` that matches `when` (SQL on NEW) sleeps `seconds`: in
    its INSERT, or (a deferred trigger) in its COMMIT. Test-only, dropped after."""
    name = f"sleep_{table}_{'commit' if at_commit else 'insert'}"
    kind = "CONSTRAINT TRIGGER" if at_commit else "TRIGGER"
    deferred = "DEFERRABLE INITIALLY DEFERRED" if at_commit else ""
    create = f"""
    CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_sleep({seconds});
        RETURN NULL;
    END $$;
    CREATE {kind} {name} AFTER INSERT ON {table} {deferred}
        FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION {name}();
    """
    asyncio.run(execute(database_url, create))
    try:
        yield database_url
    finally:
        drop = f"DROP TRIGGER {name} ON {table}; DROP FUNCTION {name}();"
        asyncio.run(execute(database_url, drop))


def test_the_api_role_is_migrated_with_server_side_time_limits(committing_database: str) -> None:
    # given: the app's own engine, logged in as the API role as on AWS
    engine = build_engine(get_settings(), database_url=prepare_api_role(committing_database))

    async def milliseconds(setting: str) -> int:
        async with engine.connect() as conn:
            query = text("SELECT setting::int FROM pg_settings WHERE name = :name")
            return int((await conn.execute(query, {"name": setting})).scalar_one())

    # when / then: what every API session starts with, with no SET from the client; the
    # server's answer comes before the client's own command timeout would give up
    statement_timeout = asyncio.run(milliseconds("statement_timeout"))
    assert statement_timeout == 9_000
    assert statement_timeout < get_settings().db_command_timeout_seconds * 1000
    assert asyncio.run(milliseconds("idle_in_transaction_session_timeout")) == 60_000


# Test-only: the COMMIT of a registration for a `slowcommit_*` username sleeps (a
# deferred trigger runs at COMMIT), longer than the invocation has left.
COMMIT_SLEEP_SECONDS = 3


@pytest.fixture
def sleeping_insert(committing_database: str) -> Iterator[str]:
    """Registering a `sleep_*` username sleeps in its INSERT."""
    sleeping = "NEW.username LIKE 'sleep\\_%'"
    with _sleeping_writes(committing_database, "users", sleeping, SLEEP_SECONDS, at_commit=False):
        yield committing_database


@pytest.fixture
def short_server_timeout(sleeping_insert: str) -> Iterator[str]:
    """This database's API sessions get a 1 s statement timeout."""
    database = sleeping_insert.rsplit("/", 1)[-1]
    role_in_database = f"ALTER ROLE {API_ROLE} IN DATABASE {database}"
    statement_timeout = f"statement_timeout = '{SERVER_STATEMENT_TIMEOUT}'"
    asyncio.run(execute(sleeping_insert, f"{role_in_database} SET {statement_timeout}"))
    yield sleeping_insert
    asyncio.run(execute(sleeping_insert, f"{role_in_database} RESET statement_timeout"))


async def _api_statements_running(database_url: str) -> int:
    running = await fetchval(
        database_url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND usename = $1 AND state = 'active'",
        API_ROLE,
    )
    return int(running)  # type: ignore[call-overload]


async def test_a_statement_the_client_never_cancels_is_ended_by_the_server_as_a_503(
    short_server_timeout: str, committing_client: httpx.AsyncClient
) -> None:
    credentials = Credentials.new("sleep")

    # when: the INSERT runs past the server's limit, long before the client's
    response = await committing_client.post("/api/auth/register", json=credentials.registration())

    # then: the project's 503, nothing written, and nothing left running on the server
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "database_unavailable"
    stored = await fetchval(
        short_server_timeout, "SELECT count(*) FROM users WHERE username = $1", credentials.username
    )
    assert stored == 0
    assert await _api_statements_running(short_server_timeout) == 0


@pytest.fixture(params=["null", "single"])
def app_on_either_pool(
    request: pytest.FixtureRequest, app: Any, engine: Any, sleeping_insert: str
) -> Iterator[Any]:
    """The app on the sleeping database, connecting per request or keeping a connection."""
    scratch = build_engine(
        get_settings(), database_url=prepare_api_role(sleeping_insert), pool=request.param
    )
    set_engine(scratch)
    yield app
    set_engine(engine)
    asyncio.run(scratch.dispose())


def test_a_request_near_the_lambda_timeout_answers_503_before_it_and_writes_nothing(
    sleeping_insert: str, app_on_either_pool: Any
) -> None:
    # given: the real Lambda handler, and an invocation whose deadline (1 s in) comes
    # while its INSERT sleeps, before the server's own statement timeout
    handler = make_handler(app_on_either_pool)
    credentials = Credentials.new("sleep")
    event = http_api_event("POST", "/api/auth/register", json=credentials.registration())

    # when
    response = handler(event, FakeLambdaContext(timeout_seconds=DEADLINE_MARGIN_SECONDS + 1))

    # then: the project's 503 in time for its log line, and the statement was cancelled
    assert response["statusCode"] == 503, response
    assert json.loads(response["body"])["error"]["code"] == "request_timeout"
    assert response["headers"]["x-request-id"]

    async def nothing_running() -> bool:
        return await _api_statements_running(sleeping_insert) == 0

    asyncio.run(wait_until(nothing_running, lambda: "the INSERT still runs on the server"))
    stored = asyncio.run(
        fetchval(
            sleeping_insert, "SELECT count(*) FROM users WHERE username = $1", credentials.username
        )
    )
    assert stored == 0
    # and the same container, on the same event loop, serves the next request normally
    again = Credentials.new("after_timeout")
    event = http_api_event("POST", "/api/auth/register", json=again.registration())
    assert handler(event, FakeLambdaContext())["statusCode"] == 201


@dataclass(frozen=True)
class SlowCommit:
    """A request one of whose COMMITs sleeps: its answer, and what that COMMIT wrote."""

    table: str  # the COMMIT of an INSERT into it sleeps,
    sleeps_when: str  # when the row matches this (SQL on NEW)
    request: Callable[[Credentials], dict[str, Any]]
    answer: int
    committed: str  # 1 when the write stood, given `row_name` of the request's credentials
    row_name: Callable[[Credentials], str] = lambda c: c.username
    registered_first: bool = False  # the request is for an account registered before


SLOW_COMMITS = {
    "the request's transaction (a registration)": SlowCommit(
        "users",
        "NEW.username LIKE 'slowcommit\\_%'",
        lambda c: http_api_event("POST", "/api/auth/register", json=c.registration()),
        201,
        "SELECT count(*) FROM users WHERE username = $1",
    ),
    "a transaction of its own (a wrong password's guess)": SlowCommit(
        "login_throttle",
        # the counter's key folds the name as uniqueness does: slowcommit_x counts as slowcommit-x
        "NEW.login LIKE 'login:slowcommit-%'",
        lambda c: http_api_event("POST", "/api/auth/token", form=c.login_form()),
        401,
        "SELECT failures FROM login_throttle WHERE login = $1",
        lambda c: login_key(c.username),
    ),
    "a password recovery's (its reset link)": SlowCommit(
        "account_tokens",
        "NEW.purpose = 'reset_password' AND NEW.email LIKE 'slowcommit\\_%'",
        lambda c: http_api_event(
            "POST", "/api/auth/password-recovery", json={"email": c.registration()["email"]}
        ),
        202,
        "SELECT count(*) FROM account_tokens WHERE email = $1 AND purpose = 'reset_password'",
        lambda c: str(c.registration()["email"]),
        registered_first=True,
    ),
}


@pytest.fixture(params=SLOW_COMMITS.values(), ids=SLOW_COMMITS.keys())
def sleeping_commit(
    request: pytest.FixtureRequest, committing_database: str
) -> Iterator[SlowCommit]:
    """A request for a `slowcommit_*` username, one of whose COMMITs sleeps."""
    slow: SlowCommit = request.param
    with _sleeping_writes(
        committing_database, slow.table, slow.sleeps_when, COMMIT_SLEEP_SECONDS, at_commit=True
    ):
        yield slow


def test_a_commit_under_way_at_the_deadline_is_not_cancelled_and_answers_what_it_did(
    sleeping_commit: SlowCommit, committing_app: Any, committing_database: str
) -> None:
    # given: an invocation whose deadline comes while a COMMIT runs, the request's last or
    # one it goes on after (the work before it, an Argon2 hash and an INSERT, takes a
    # fraction of the 1.5 s before it)
    handler = make_handler(committing_app)
    credentials = Credentials.new("slowcommit")
    context = FakeLambdaContext(timeout_seconds=DEADLINE_MARGIN_SECONDS + 1.5)
    if sleeping_commit.registered_first:
        registering = http_api_event("POST", "/api/auth/register", json=credentials.registration())
        assert handler(registering, FakeLambdaContext())["statusCode"] == 201

    # when
    response = handler(sleeping_commit.request(credentials), context)

    # then: the truth about the write, which stands (a 503 would have the client retry a
    # registration that exists, or a refresh token already spent; and a guess cancelled
    # in its COMMIT went uncounted: a guesser slowing it down would guess past the limit)
    assert response["statusCode"] == sleeping_commit.answer, response
    row_name = sleeping_commit.row_name(credentials)
    committed = fetchval(committing_database, sleeping_commit.committed, row_name)
    assert asyncio.run(committed) == 1


@contextlib.contextmanager
def _never_answering_endpoint(monkeypatch: pytest.MonkeyPatch, service: str) -> Iterator[None]:
    """`service`'s AWS endpoint takes connections and never answers: each of the SDK's
    attempts waits out its read timeout (core.aws), far longer than the margin. With
    throwaway credentials; the settings are read again on entry and on exit."""
    from tests.fixtures.aws import use_dummy_aws_credentials

    with socket.create_server(("127.0.0.1", 0)) as listener:  # listens, never accepts
        use_dummy_aws_credentials(monkeypatch, "us-east-1")
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", url)
        get_settings.cache_clear()
        yield
    # Closing the listener resets its queued connections: the SDK's thread gives up.
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def stalled_ses(monkeypatch: pytest.MonkeyPatch, committing_app: Any) -> Iterator[None]:
    """A deployed stage whose SES never answers."""
    from lambda_app import mail

    # Starlette builds the middleware (reading the stage once) on the app's first request.
    assert make_handler(committing_app)(http_api_event("GET", "/api/health"), FakeLambdaContext())
    for name, value in {
        "ENVIRONMENT": "dev",
        "EMAIL_BACKEND": "ses",
        "EMAIL_FROM": "no-reply@example.com",
        "FRONTEND_URL": "https://app.example.com",
    }.items():
        monkeypatch.setenv(name, value)
    mail.get_mailer.cache_clear()
    with _never_answering_endpoint(monkeypatch, "SESV2"):
        yield
    mail.get_mailer.cache_clear()


# The deadline in these: registration or a login (an Argon2 hash, an INSERT) is done
# well inside it.
SHORT_DEADLINE_SECONDS = 2.5


def test_a_mail_after_the_commit_that_gets_no_answer_is_given_up_in_time(
    stalled_ses: None,
    committing_app: Any,
    committing_database: str,
    emf_lines: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given: a registration, whose verification link goes after its COMMIT (no
    # cancelling then), on an invocation with little time left
    handler = make_handler(committing_app)
    credentials = Credentials.new("stalled_ses")
    event = http_api_event("POST", "/api/auth/register", json=credentials.registration())
    context = FakeLambdaContext(timeout_seconds=DEADLINE_MARGIN_SECONDS + SHORT_DEADLINE_SECONDS)

    # when
    response = handler(event, context)

    # then: the client hears of its account before Lambda's timeout, not a bare 5xx
    assert response["statusCode"] == 201, response
    assert context.get_remaining_time_in_millis() > 0
    stored = asyncio.run(
        fetchval(
            committing_database,
            "SELECT count(*) FROM users WHERE username = $1",
            credentials.username,
        )
    )
    assert stored == 1
    # and the lost mail is logged and counted, as SES refusing it would be
    (line,) = [r for r in caplog.records if r.getMessage() == "account email not sent"]
    assert "before the request's deadline" in line.fields["reason"]  # type: ignore[attr-defined]
    assert [m for m in emf_lines if metrics.MAIL_FAILURES in m]


def test_a_recovery_whose_mail_gets_no_answer_answers_the_same_in_time(
    stalled_ses: None, committing_app: Any, emf_lines: list[str]
) -> None:
    # given: an active account (its verification link lost the same way), then a
    # recovery on an invocation with little time left
    handler = make_handler(committing_app)
    credentials = Credentials.new("stalled_recovery")
    registered = http_api_event("POST", "/api/auth/register", json=credentials.registration())
    short = DEADLINE_MARGIN_SECONDS + SHORT_DEADLINE_SECONDS
    assert handler(registered, FakeLambdaContext(timeout_seconds=short))["statusCode"] == 201
    email = credentials.registration()["email"]
    event = http_api_event("POST", "/api/auth/password-recovery", json={"email": email})
    context = FakeLambdaContext(timeout_seconds=short)

    # when
    response = handler(event, context)

    # then: the one answer every address gets, in time
    assert response["statusCode"] == 202, response
    assert json.loads(response["body"])["message"] == RECOVERY_ACCEPTED
    assert context.get_remaining_time_in_millis() > 0
    assert len([m for m in emf_lines if metrics.MAIL_FAILURES in m]) == 2


@pytest.fixture
def stalled_signing_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The signing keys in Secrets Manager (JWT_SECRET_ARN, as on AWS), which never
    answers, and not fetched yet: as in a container's first request."""
    from lambda_app.identity import signing_key

    monkeypatch.setenv("JWT_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt")
    with _never_answering_endpoint(monkeypatch, "SECRETS_MANAGER"):
        signing_key.clear_cache()
        yield
    signing_key.clear_cache()


def test_a_token_check_waiting_on_secrets_manager_answers_503_in_time(
    stalled_signing_keys: None, committing_app: Any
) -> None:
    # given: a bearer token naming a kid, on an invocation with little time left
    handler = make_handler(committing_app)
    token = jwt.encode({"sub": "1"}, "k" * 32, algorithm="HS256", headers={"kid": "k1"})
    event = http_api_event("GET", "/api/users/me", token=token)
    context = FakeLambdaContext(timeout_seconds=DEADLINE_MARGIN_SECONDS + SHORT_DEADLINE_SECONDS)

    # when
    response = handler(event, context)

    # then: the project's 503 before Lambda's timeout, not the gateway's bare 5xx
    assert response["statusCode"] == 503, response
    assert json.loads(response["body"])["error"]["code"] == "request_timeout"
    assert context.get_remaining_time_in_millis() > 0


def test_a_login_waiting_on_secrets_manager_answers_503_in_time_and_writes_nothing(
    committing_app: Any, committing_database: str, stalled_signing_keys: None
) -> None:
    # given: an account (registering signs no token), then its login with little time left
    handler = make_handler(committing_app)
    credentials = Credentials.new("stalled_keys")
    registered = http_api_event("POST", "/api/auth/register", json=credentials.registration())
    assert handler(registered, FakeLambdaContext())["statusCode"] == 201
    event = http_api_event("POST", "/api/auth/token", form=credentials.login_form())
    context = FakeLambdaContext(timeout_seconds=DEADLINE_MARGIN_SECONDS + SHORT_DEADLINE_SECONDS)

    # when
    response = handler(event, context)

    # then: in time, and no session was started (the refresh token rolled back)
    assert response["statusCode"] == 503, response
    assert json.loads(response["body"])["error"]["code"] == "request_timeout"
    assert context.get_remaining_time_in_millis() > 0
    sessions = asyncio.run(
        fetchval(
            committing_database,
            "SELECT count(*) FROM refresh_tokens r JOIN users u ON u.id = r.user_id"
            " WHERE u.username = $1",
            credentials.username,
        )
    )
    assert sessions == 0
