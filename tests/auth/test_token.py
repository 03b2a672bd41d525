import datetime as dt

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.core.settings import get_settings
from lambda_app.identity.signing_key import signing_key_for
from lambda_app.identity.tokens import claimed_kid, verify_access_token
from lambda_app.models import LoginThrottle, User
from tests.fixtures.accounts import DEFAULT_PASSWORD
from tests.fixtures.factories import UserFactory


async def test_token_with_username(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post(
        "/api/auth/token", data={"username": user.username, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == get_settings().access_token_expire_minutes * 60
    token = body["access_token"]
    claims = verify_access_token(token, signing_key_for(claimed_kid(token)))
    assert claims.user_id == user.id


async def test_token_with_email_in_any_case(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post(
        "/api/auth/token", data={"username": user.email.upper(), "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200


async def test_unknown_user_and_wrong_password_get_the_same_401(
    client: httpx.AsyncClient, user: User
) -> None:
    unknown = await client.post(
        "/api/auth/token", data={"username": "ghost", "password": "whatever1"}
    )
    wrong = await client.post(
        "/api/auth/token", data={"username": user.username, "password": "wrong-pass"}
    )
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    assert unknown.json()["error"]["code"] == "invalid_credentials"
    assert unknown.headers["www-authenticate"] == "Bearer"


async def test_inactive_user_cannot_get_a_token(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    inactive = await user_factory(is_active=False)
    response = await client.post(
        "/api/auth/token", data={"username": inactive.username, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


async def test_token_requires_form_fields(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/token", data={"username": "x"})
    assert response.status_code == 422


async def test_outdated_hash_is_upgraded_at_login(
    client: httpx.AsyncClient, session: AsyncSession, user: User
) -> None:
    from pwdlib.hashers.argon2 import Argon2Hasher

    # A hash made with weaker (older) parameters than the configured ones.
    user.hashed_password = Argon2Hasher(memory_cost=8192, time_cost=1, parallelism=1).hash(
        DEFAULT_PASSWORD
    )
    await session.flush()
    old_hash = user.hashed_password
    response = await client.post(
        "/api/auth/token", data={"username": user.username, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200
    await session.refresh(user)
    assert user.hashed_password != old_hash
    assert "m=19456" in user.hashed_password


async def test_finished_windows_of_login_names_are_deleted_a_few_at_a_time(
    client: httpx.AsyncClient, session: AsyncSession, user: User
) -> None:
    # given: eight login names nobody has tried since their window ended
    window = dt.timedelta(seconds=get_settings().login_failure_window_seconds)
    ended = dt.datetime.now(dt.UTC) - window - dt.timedelta(seconds=1)
    names = [f"login:forgotten-name-{n}" for n in range(8)]
    session.add_all(LoginThrottle(login=n, failures=3, window_started_at=ended) for n in names)
    await session.flush()

    # when: one login comes
    response = await client.post(
        "/api/auth/token", data={"username": user.username, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200

    # then: five of them (the bound) are gone
    left = await session.scalar(select(func.count()).where(LoginThrottle.login.in_(names)))
    assert left == 8 - 5
