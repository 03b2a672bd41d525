"""AWS failing while the API fetches the credentials it logs in to the database with.

Unreachable (no endpoint, a timeout) is the database being unavailable for now: a 503.
AWS answering with an error (a secret that doesn't exist, a denied permission) is a
configuration to fix: the 500 it alarms on. Real botocore against a closed port and moto.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

from lambda_app.db.engine import build_engine, set_engine
from tests.fixtures.aws import use_dummy_aws_credentials
from tests.fixtures.ports import free_port
from tests.fixtures.settings import api_settings

REGION = "eu-west-1"
MISSING_SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:app-db-AbCdEf"


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    use_dummy_aws_credentials(monkeypatch, REGION)
    boto3.setup_default_session()
    yield
    boto3.DEFAULT_SESSION = None


@pytest.fixture
async def secret_backed_client(app: Any, engine: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app with an engine that logs in with a Secrets Manager secret (source c)."""
    secret_engine = build_engine(
        api_settings(db_secret_arn=MISSING_SECRET_ARN, db_host="127.0.0.1", db_name="app")
    )
    set_engine(secret_engine)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
    finally:
        set_engine(engine)


async def _log_in(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post(
        "/api/auth/token", data={"username": "someone", "password": "a password"}
    )


async def test_secrets_manager_unreachable_answers_503(
    aws_credentials: None,
    monkeypatch: pytest.MonkeyPatch,
    secret_backed_client: httpx.AsyncClient,
) -> None:
    # given: nothing listens where the SDK sends its requests
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://127.0.0.1:{free_port()}")

    # when
    response = await _log_in(secret_backed_client)

    # then
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "database_unavailable"


async def test_secrets_manager_refusing_stays_a_500(
    aws_credentials: None, secret_backed_client: httpx.AsyncClient
) -> None:
    # given: AWS answers, and the secret doesn't exist (moto: ResourceNotFoundException)
    with mock_aws():
        # when
        response = await _log_in(secret_backed_client)

    # then
    assert response.status_code == 500, response.text
    assert response.json()["error"]["code"] == "internal_error"
    assert MISSING_SECRET_ARN not in response.text
