"""Request logging under the Lambda handler: one JSON line per request, correlated by the
Lambda request id, and never a password, a password hash or a token."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from tests.fixtures.accounts import register_and_login_via_handler
from tests.fixtures.lambda_events import (
    Handler,
    HttpRequest,
    bearer,
    form_body,
    function_url,
    http_api_v2,
    invoke,
    json_body,
    request_log_records,
    rest_api_v1,
)


def test_one_json_line_per_request_with_the_lambda_request_id(
    api_handler: Handler, log_lines: list[str]
) -> None:
    account = register_and_login_via_handler(api_handler)
    log_lines.clear()

    me = invoke(
        api_handler, rest_api_v1(HttpRequest("GET", "/api/users/me", headers=bearer(account.token)))
    )

    assert me.status == 200
    assert len(log_lines) == 1, log_lines  # Mangum's own access line is silenced
    (record,) = request_log_records(log_lines)
    assert record["level"] == "INFO"
    assert record["method"] == "GET"
    assert record["path"] == "/prod/api/users/me"  # as the client called it
    assert record["status"] == 200
    assert isinstance(record["duration_ms"], float) and record["duration_ms"] >= 0
    assert record["request_id"] == me.request_id == me.header("x-request-id")
    assert record["user_id"] == me.json()["id"]


def test_anonymous_and_failed_requests_are_logged_too(
    api_handler: Handler, log_lines: list[str]
) -> None:
    health = invoke(api_handler, http_api_v2(HttpRequest("GET", "/api/health")))
    denied = invoke(api_handler, function_url(HttpRequest("GET", "/api/users/me")))

    records = {r["request_id"]: r for r in request_log_records(log_lines)}
    assert records[health.request_id]["status"] == 200
    assert records[health.request_id]["user_id"] is None
    assert records[denied.request_id]["status"] == 401
    assert denied.header("x-request-id") == denied.request_id


@pytest.fixture
def verbose_logging() -> Iterator[None]:
    """DEBUG everywhere: secrets must stay out of the logs even at the chattiest level."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    yield
    root.setLevel(level)


async def _stored_hash(username: str) -> str:
    from lambda_app.core.settings import get_settings
    from lambda_app.db.engine import build_engine

    engine = build_engine(get_settings())
    try:
        async with engine.connect() as conn:
            value = await conn.scalar(
                text("SELECT hashed_password FROM users WHERE username = :u"), {"u": username}
            )
    finally:
        await engine.dispose()
    assert isinstance(value, str)
    return value


def test_passwords_hashes_and_tokens_never_reach_the_logs(
    api_handler: Handler, log_lines: list[str], verbose_logging: None
) -> None:
    # given: a user registered and logged in, and a few requests that fail on secrets
    account = register_and_login_via_handler(api_handler, rest_api_v1)
    me = invoke(
        api_handler, http_api_v2(HttpRequest("GET", "/api/users/me", headers=bearer(account.token)))
    )
    wrong_password = f"wrong-{uuid.uuid4().hex}"
    body, headers = form_body({"username": account.username, "password": wrong_password})
    failed_login = invoke(
        api_handler,
        function_url(
            HttpRequest("POST", "/api/auth/token", headers=headers, body=body, base64_body=True)
        ),
    )
    short_password = uuid.uuid4().hex[:7]  # too short: a validation error
    body, headers = json_body(
        {"username": "someone", "email": "a@example.com", "password": short_password}
    )
    invalid = invoke(
        api_handler,
        http_api_v2(HttpRequest("POST", "/api/auth/register", headers=headers, body=body)),
    )
    broken_json_password = f"broken-{uuid.uuid4().hex}"
    broken = invoke(
        api_handler,
        http_api_v2(
            HttpRequest(
                "POST",
                "/api/auth/register",
                headers={"Content-Type": "application/json"},
                body=f'{{"password": "{broken_json_password}",'.encode(),
            )
        ),
    )
    bad_token = invoke(
        api_handler,
        rest_api_v1(HttpRequest("GET", "/api/users/me", headers=bearer(account.token + "x"))),
    )
    stored_hash = asyncio.run(_stored_hash(account.username))

    assert me.status == 200 and failed_login.status == 401
    assert invalid.status == 422 and broken.status == 422 and bad_token.status == 401

    # then: the requests were logged, and no secret appears in any line
    assert len(request_log_records(log_lines)) >= 7
    secrets = [
        account.password,
        account.token,
        account.token.split(".")[2],  # the signature alone
        stored_hash,
        wrong_password,
        short_password,
        broken_json_password,
    ]
    for line in log_lines:
        json.loads(line)  # every line is one JSON object
        for secret in secrets:
            assert secret not in line
        assert "$argon2" not in line
        assert "Bearer" not in line
