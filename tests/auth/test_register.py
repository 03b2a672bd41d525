import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from lambda_app.models import User
from tests.fixtures.factories import UserFactory


def payload(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "username": "alice",
        "email": "alice@example.com",
        "password": "s3cret-pass",
        "first_name": "Alice",
        "last_name": "Liddell",
    }
    data.update(overrides)
    return data


async def test_register_creates_user(client: httpx.AsyncClient, session: AsyncSession) -> None:
    response = await client.post(
        "/api/auth/register",
        json=payload(username="Alice_B", email="Alice@Example.COM"),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["username"] == "Alice_B"
    assert body["slug"] == "alice-b"
    assert body["email"] == "alice@example.com"
    assert body["first_name"] == "Alice" and body["last_name"] == "Liddell"
    assert body["is_superuser"] is False and body["is_active"] is True
    assert "hashed_password" not in body and "password" not in body
    stored = await session.scalar(select(User).where(User.username == "Alice_B"))
    assert stored is not None and stored.hashed_password.startswith("$argon2id$")
    assert stored.hashed_password != "s3cret-pass"


async def test_register_names_are_optional(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/auth/register",
        json={"username": "bob", "email": "bob@example.com", "password": "s3cret-pass"},
    )
    assert response.status_code == 201
    assert response.json()["first_name"] == ""


async def test_register_taken_username_is_409(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    await user_factory(username="alice")
    response = await client.post("/api/auth/register", json=payload(email="other@example.com"))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "username_taken"


async def test_register_username_differing_only_in_case_is_409(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    await user_factory(username="alice")
    response = await client.post(
        "/api/auth/register", json=payload(username="ALICE", email="other@example.com")
    )
    assert response.status_code == 409  # the slug (alice) is taken
    assert response.json()["error"]["code"] == "username_taken"


async def test_register_taken_email_is_409_regardless_of_case(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    await user_factory(username="someone", email="alice@example.com")
    response = await client.post("/api/auth/register", json=payload(email="ALICE@example.com"))
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "email_taken",
        "message": "This email is already registered",
        "details": None,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("password", "pw7chrs"),
        ("username", "no spaces allowed"),
        ("username", "q1"),
        ("username", "x" * 33),
        ("email", "not-an-email"),
        ("first_name", "x" * 101),
    ],
)
async def test_register_invalid_input_is_422(
    client: httpx.AsyncClient, field: str, value: str
) -> None:
    response = await client.post("/api/auth/register", json=payload(**{field: value}))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert any(field in detail["loc"] for detail in error["details"])
    # The submitted value is never echoed back (it could be a password).
    assert value not in response.text


async def test_register_rejects_unknown_fields(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/register", json=payload(is_superuser=True))
    assert response.status_code == 422


async def test_register_race_on_same_username_gives_one_201_and_one_409(
    app: object, engine: AsyncEngine
) -> None:
    """Two requests insert at once, each on its own connection and transaction."""
    name = f"race{uuid.uuid4().hex[:8]}"
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            responses = await asyncio.gather(
                *(
                    client.post(
                        "/api/auth/register",
                        json=payload(username=name, email=f"{name}{i}@example.com"),
                    )
                    for i in range(2)
                )
            )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201, 409], [r.text for r in responses]
        async with engine.connect() as conn:
            count = await conn.scalar(
                select(func.count()).select_from(User).where(User.username == name)
            )
        assert count == 1
    finally:
        async with engine.begin() as conn:
            await conn.execute(delete(User).where(User.username == name))
