"""The auth tests' fixtures: the mail the app sent, and a client whose requests commit for
real, for what the tests' rolled-back transaction would undo: a race between two
requests, or a row written in a transaction of its own (a replay's revocation, a failed
login's count)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from lambda_app.models import EmailThrottle, LoginThrottle, User
from tests.fixtures.accounts import Credentials, register
from tests.fixtures.mailbox import Mailbox


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
async def committing(
    app, engine: AsyncEngine
) -> AsyncIterator[tuple[httpx.AsyncClient, Credentials]]:  # type: ignore[no-untyped-def]
    """The client, and a user it registered; afterwards the user (and its tokens, by
    cascade) and the throttle rows of its name and address are deleted."""
    transport = httpx.ASGITransport(app=app)
    credentials = Credentials.new("committed")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        try:
            await register(client, credentials)
            yield client, credentials
        finally:
            email = credentials.registration()["email"]
            async with engine.begin() as conn:
                await conn.execute(delete(User).where(User.username == credentials.username))
                await conn.execute(delete(EmailThrottle).where(EmailThrottle.email == email))
                login = credentials.username.lower()
                await conn.execute(delete(LoginThrottle).where(LoginThrottle.login == login))
