"""Property-based fuzzing of every operation in the app's own OpenAPI schema (schemathesis).

Anonymous and as a superuser with a real token, against an app that commits for
real to a scratch database. No 5xx, and every response must match the schema:
status code, content type, headers and body.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lambda_app.core.settings import ApiSettings
from lambda_app.docs_ui.router import OPENAPI_PATH
from lambda_app.main import create_app
from tests.reliability.databases import insert_superuser

pytestmark = pytest.mark.slow

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 15


# Loaded at import (collection) time: schemathesis' fixture-based lazy loading breaks on
# pytest 9. Building the app opens no connection; which database its requests reach is
# decided per test by `committing_app` (it installs the scratch database's engine).
# Explicit local settings: nothing is read into the process-wide settings cache this early.
schema = schemathesis.openapi.from_asgi(OPENAPI_PATH, create_app(ApiSettings(environment="local")))


async def _superuser_token(app: Any, database_url: str) -> str:
    username, password = f"fuzz_admin_{uuid.uuid4().hex[:8]}", "fuzzing admin password"
    await insert_superuser(database_url, username, password)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post(
            "/api/auth/token", data={"username": username, "password": password}
        )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
def superuser_headers(committing_app: Any, committing_database: str) -> dict[str, str]:
    token = asyncio.run(_superuser_token(committing_app, committing_database))
    return {"Authorization": f"Bearer {token}"}


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,  # the same examples every run: a failure reproduces
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _call_and_check(case: Any, headers: dict[str, str]) -> None:
    response = case.call(headers=headers)
    case.validate_response(response, checks=CHECKS, headers=headers)


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_keeps_its_contract_for_anonymous_callers(
    case: Any, committing_app: Any
) -> None:
    _call_and_check(case, {})


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_keeps_its_contract_for_a_superuser(
    case: Any, superuser_headers: dict[str, str]
) -> None:
    _call_and_check(case, superuser_headers)
