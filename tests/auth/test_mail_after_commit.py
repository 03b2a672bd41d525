"""A link is mailed only once the transaction that stored its token has committed.

A registration or an email change mails its verification link (and an email change its
notice to the old address, a password change its notice to the account's) after the
request's commit: when that commit fails, the account change did not happen and no mail
goes out (a link to a token that was never stored would be dead, a notice would tell of
a change that did not happen). The failure is real: a deferred trigger on the test
database refuses the COMMIT of any row whose email starts with `refused_` (of a new
password, `pwrefused_`), after the request has written everything else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from lambda_app.devtools.database import plain_connection
from lambda_app.models import AccountToken, EmailThrottle, User
from tests.fixtures.accounts import Credentials, login
from tests.fixtures.mailbox import PASSWORD_NOTICE, Mailbox

REFUSE_COMMIT = r"""
CREATE FUNCTION test_refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'this commit is refused by the test';
END $$;
CREATE CONSTRAINT TRIGGER test_refuse_commit AFTER INSERT OR UPDATE OF email ON users
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.email LIKE 'refused\_%') EXECUTE FUNCTION test_refuse_commit();
CREATE CONSTRAINT TRIGGER test_refuse_password_commit AFTER UPDATE OF hashed_password ON users
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.email LIKE 'pwrefused\_%') EXECUTE FUNCTION test_refuse_commit();
"""
DROP_REFUSAL = """
DROP TRIGGER test_refuse_password_commit ON users;
DROP TRIGGER test_refuse_commit ON users;
DROP FUNCTION test_refuse_commit();
"""


async def _execute(url: str, sql: str) -> None:
    async with plain_connection(url) as conn:
        await conn.execute(sql)


@pytest.fixture(scope="module")
def refused_commits(database_url_for_tests: str) -> Iterator[None]:
    """The trigger, for this module's tests only (its owner's URL: the API role can't)."""
    asyncio.run(_execute(database_url_for_tests, REFUSE_COMMIT))
    yield
    asyncio.run(_execute(database_url_for_tests, DROP_REFUSAL))


@pytest.fixture
async def client(app, refused_commits: None) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    """Requests that commit for real: the refusal happens at COMMIT."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


async def _emails_of(engine: AsyncEngine, username: str) -> list[str]:
    async with engine.connect() as conn:
        return list(await conn.scalars(select(User.email).where(User.username == username)))


async def _tokens_for(engine: AsyncEngine, email: str) -> int:
    async with engine.connect() as conn:
        count = select(func.count()).where(AccountToken.email == email)
        return int(await conn.scalar(count) or 0)


async def test_a_registration_whose_commit_fails_mails_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, mailbox: Mailbox
) -> None:
    # given
    account = Credentials.new("refused")

    # when
    response = await client.post("/api/auth/register", json=account.registration())

    # then: an error in the one error shape, no account, and no link to a token never stored
    assert response.status_code == 500, response.text
    assert response.json()["error"]["code"] == "internal_error"
    assert await _emails_of(engine, account.username) == []
    assert mailbox.to(account.registration()["email"]) == []
    assert await _tokens_for(engine, account.registration()["email"]) == 0


async def test_an_email_change_whose_commit_fails_mails_nothing_and_keeps_the_address(
    client: httpx.AsyncClient, engine: AsyncEngine, mailbox: Mailbox
) -> None:
    # given: an account that registered (and committed) with an address the trigger allows
    account = Credentials.new("kept")
    created = await client.post("/api/auth/register", json=account.registration())
    assert created.status_code == 201, created.text
    refused = f"refused_{account.username}@example.com"
    try:
        headers = await login(client, account.username, account.password)

        # when
        change = {"email": refused, "current_password": account.password}
        response = await client.patch("/api/users/me", json=change, headers=headers)

        # then
        assert response.status_code == 500, response.text
        assert mailbox.to(refused) == []
        assert await _tokens_for(engine, refused) == 0  # the change's token rolled back too
        assert await _emails_of(engine, account.username) == [account.registration()["email"]]
        # the registration's own link was mailed after its commit, as usual, and no notice
        # of a change that did not happen
        old_address_got = mailbox.to(account.registration()["email"])
        assert [mail.subject for mail in old_address_got] == ["Verify your email address"]
    finally:
        async with engine.begin() as conn:
            await conn.execute(delete(User).where(User.username == account.username))
            await conn.execute(
                delete(EmailThrottle).where(
                    EmailThrottle.email.in_([account.registration()["email"], refused])
                )
            )


async def test_a_password_change_whose_commit_fails_mails_no_notice(
    client: httpx.AsyncClient, engine: AsyncEngine, mailbox: Mailbox
) -> None:
    # given an account whose new password's COMMIT the trigger refuses
    account = Credentials.new("pwrefused")
    email = account.registration()["email"]
    created = await client.post("/api/auth/register", json=account.registration())
    assert created.status_code == 201, created.text
    try:
        headers = await login(client, account.username, account.password)

        # when
        change = {"current_password": account.password, "new_password": "never-stored-1"}
        response = await client.post("/api/users/me/password", json=change, headers=headers)

        # then the password stands as it was, and nobody is told it changed
        assert response.status_code == 500, response.text
        assert mailbox.to(email, PASSWORD_NOTICE) == []
        assert await login(client, account.username, account.password)
    finally:
        async with engine.begin() as conn:
            await conn.execute(delete(User).where(User.username == account.username))
            await conn.execute(delete(EmailThrottle).where(EmailThrottle.email == email))
