"""Small async factories with keyword-only arguments, and login helpers."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.identity.passwords import hash_password
from lambda_app.models import User
from lambda_app.users.service import slugify

DEFAULT_PASSWORD = "correct horse battery"
_counter = itertools.count(1)


async def create_user(
    session: AsyncSession,
    *,
    username: str | None = None,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    is_superuser: bool = False,
    is_active: bool = True,
    first_name: str = "Test",
    last_name: str = "User",
) -> User:
    n = next(_counter)
    username = username or f"user{n}"
    user = User(
        username=username,
        slug=slugify(username),
        email=(email or f"{username}@example.com").lower(),
        first_name=first_name,
        last_name=last_name,
        hashed_password=hash_password(password),
        is_superuser=is_superuser,
        is_active=is_active,
    )
    session.add(user)
    await session.flush()
    await session.refresh(user)
    return user


async def login(
    client: httpx.AsyncClient, username: str, password: str = DEFAULT_PASSWORD
) -> dict[str, str]:
    response = await client.post(
        "/api/auth/token", data={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


UserFactory = Callable[..., Awaitable[User]]


@pytest.fixture
def user_factory(session: AsyncSession) -> UserFactory:
    async def make(**kwargs: object) -> User:
        return await create_user(session, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def user(user_factory: UserFactory) -> User:
    return await user_factory()


@pytest.fixture
async def superuser(user_factory: UserFactory) -> User:
    return await user_factory(is_superuser=True)


@pytest.fixture
async def user_headers(client: httpx.AsyncClient, user: User) -> dict[str, str]:
    return await login(client, user.username)


@pytest.fixture
async def superuser_headers(client: httpx.AsyncClient, superuser: User) -> dict[str, str]:
    return await login(client, superuser.username)
