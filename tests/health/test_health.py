import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from lambda_app.core.settings import get_settings
from lambda_app.db.engine import build_engine, set_engine
from lambda_app.devtools.database import LOCAL_API_ROLE_PASSWORD, plain_connection


async def test_health_does_not_need_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]


@pytest.fixture
async def role_without_one_grant(
    database_url_for_tests: str, api_database_url_for_tests: str
) -> AsyncIterator[str]:
    """The URL of a role with the API role's privileges on every table but one: it may not
    read `login_throttle` (a grant lost, the tables made by another owner)."""
    role = f"lambda_app_ready_{uuid.uuid4().hex[:10]}"
    grants = (
        f"CREATE ROLE {role} LOGIN PASSWORD '{LOCAL_API_ROLE_PASSWORD}';"  # noqa: S608 - ours
        f"GRANT USAGE ON SCHEMA public TO {role};"
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role};"
        f"REVOKE SELECT ON login_throttle FROM {role}"
    )
    async with plain_connection(database_url_for_tests) as owner:
        await owner.execute(grants)
    try:
        yield (
            make_url(api_database_url_for_tests)
            .set(username=role)
            .render_as_string(hide_password=False)
        )
    finally:
        async with plain_connection(database_url_for_tests) as owner:
            await owner.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")


async def test_ready_fails_when_the_api_role_cannot_use_the_schema(
    app: FastAPI, engine: AsyncEngine, role_without_one_grant: str
) -> None:
    # given: the app connecting as that role (it logs in, and `SELECT 1` works)
    lacking = build_engine(get_settings(), database_url=role_without_one_grant)
    set_engine(lacking)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            # when
            response = await client.get("/api/health/ready")
    finally:
        set_engine(engine)
        await lacking.dispose()

    # then: not ready, in the one error shape
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "schema_unusable"


async def test_both_answer_head_like_get_without_a_body(client: httpx.AsyncClient) -> None:
    for path in ("/api/health", "/api/health/ready"):
        got, head = await client.get(path), await client.head(path)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers["content-length"] == str(len(got.content))
    schema = (await client.get("/api/openapi.json")).json()
    assert set(schema["paths"]["/api/health"]) == {"get"}  # HEAD is implied by GET
    wrong = await client.post("/api/health")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD"
