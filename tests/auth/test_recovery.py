"""Password recovery: a single-use reset link by email, the same answer for every
address, throttled per address; a reset ends every token and session."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from lambda_app.auth.router import RECOVERY_ACCEPTED
from lambda_app.core.settings import LOCAL_FRONTEND_URL, get_settings
from lambda_app.identity.opaque_tokens import token_digest
from lambda_app.models import AccountToken, EmailThrottle, LoginThrottle, TokenPurpose, User
from tests.fixtures.accounts import DEFAULT_PASSWORD, Credentials, login, register
from tests.fixtures.factories import UserFactory
from tests.fixtures.mailbox import Mail, Mailbox, the_password_notice

RECOVERY, RESET, TOKEN = (
    "/api/auth/password-recovery",
    "/api/auth/reset-password",
    "/api/auth/token",
)
SUBJECT = "Reset your password"
NEW_PASSWORD = "a brand new passphrase"
INVALID_RESET_TOKEN = {
    "error": {
        "code": "invalid_reset_token",
        "message": "Invalid, expired or already used password reset link",
        "details": None,
    }
}


async def _recover(client: httpx.AsyncClient, email: str) -> httpx.Response:
    response = await client.post(RECOVERY, json={"email": email})
    # the one answer, whatever the address
    assert response.status_code == 202, response.text
    assert response.json() == {"message": RECOVERY_ACCEPTED}
    return response


async def _reset_link(client: httpx.AsyncClient, mailbox: Mailbox, user: User) -> Mail:
    await _recover(client, user.email)
    return mailbox.last_to(user.email, SUBJECT)


async def _tokens(session: AsyncSession, user: User) -> list[AccountToken]:
    rows = await session.scalars(
        select(AccountToken).where(
            AccountToken.user_id == user.id,
            AccountToken.purpose == TokenPurpose.RESET_PASSWORD.value,
        )
    )
    return list(rows)


def _assert_invalid(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json() == INVALID_RESET_TOKEN


# --- asking for a link -----------------------------------------------------------------


async def test_an_active_account_gets_a_single_use_link_stored_only_as_a_hash(
    client: httpx.AsyncClient, session: AsyncSession, mailbox: Mailbox, user: User
) -> None:
    # when
    mail = await _reset_link(client, mailbox, user)

    # then the mail goes to the user, with a link to the frontend's reset page
    assert (mail.to, mail.subject) == (user.email, SUBJECT)
    assert mail.page == f"{LOCAL_FRONTEND_URL}/reset-password"
    assert len(mail.token) == 43  # 32 random bytes, URL-safe
    # and the database holds its hash only, valid for 30 minutes, unused
    (row,) = await _tokens(session, user)
    assert row.token_hash == token_digest(mail.token) and mail.token not in row.token_hash
    assert row.email == user.email and row.used_at is None
    lifetime = row.expires_at - row.created_at
    assert abs(lifetime - dt.timedelta(minutes=30)) < dt.timedelta(minutes=1)


async def test_unknown_and_inactive_addresses_get_the_same_answer_and_no_mail(
    client: httpx.AsyncClient, session: AsyncSession, mailbox: Mailbox, user_factory: UserFactory
) -> None:
    inactive = await user_factory(is_active=False)
    unknown = "nobody-at-all@example.com"

    await _recover(client, unknown)
    await _recover(client, inactive.email)

    assert mailbox.to(unknown) == [] and mailbox.to(inactive.email) == []
    assert await _tokens(session, inactive) == []
    # the same database work as for an account: each address's request was counted
    counted = await session.scalars(
        select(EmailThrottle.email).where(EmailThrottle.email.in_([unknown, inactive.email]))
    )
    assert sorted(counted) == sorted([unknown, inactive.email])


async def test_the_address_is_matched_regardless_of_case(
    client: httpx.AsyncClient, mailbox: Mailbox, user: User
) -> None:
    await _recover(client, user.email.upper())
    assert len(mailbox.to(user.email, SUBJECT)) == 1


async def test_at_most_three_links_per_address_per_hour(
    client: httpx.AsyncClient, session: AsyncSession, mailbox: Mailbox, user: User
) -> None:
    # when the address asks five times within the hour
    for _ in range(5):
        await _recover(client, user.email)  # every answer the same 202

    # then three links were sent, and stored
    assert len(mailbox.to(user.email, SUBJECT)) == 3
    assert len(await _tokens(session, user)) == 3

    # when the window has passed, the next ask is sent again
    await session.execute(
        update(EmailThrottle)
        .where(EmailThrottle.email == user.email)
        .values(window_started_at=func.now() - dt.timedelta(minutes=61))
    )
    await _recover(client, user.email)
    assert len(mailbox.to(user.email, SUBJECT)) == 4


async def test_finished_windows_are_deleted_a_few_at_a_time(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # given eight addresses whose windows ended
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    addresses = [f"old-window-{n}@example.com" for n in range(8)]
    session.add_all(
        EmailThrottle(purpose="reset_password", email=a, requests=3, window_started_at=old)
        for a in addresses
    )
    await session.flush()

    # when one request comes
    await _recover(client, "someone-else@example.com")

    # then five of them (the bound) are gone
    left = await session.scalar(select(func.count()).where(EmailThrottle.email.in_(addresses)))
    assert left == 8 - 5


# --- using it --------------------------------------------------------------------------


async def test_a_reset_sets_the_password_and_ends_every_token_and_session(
    client: httpx.AsyncClient, session: AsyncSession, mailbox: Mailbox, user: User
) -> None:
    # given a logged-in user with a refresh token, who asked for two links
    form = {"username": user.username, "password": DEFAULT_PASSWORD}
    issued = (await client.post(TOKEN, data=form)).json()
    headers = {"Authorization": f"Bearer {issued['access_token']}"}
    older = await _reset_link(client, mailbox, user)
    link = await _reset_link(client, mailbox, user)

    # when the newest link is used
    response = await client.post(RESET, json={"token": link.token, "new_password": NEW_PASSWORD})

    # then
    assert response.status_code == 204, response.text
    assert response.content == b""
    # the new password works and the old one doesn't
    assert (await client.post(TOKEN, data={**form, "password": NEW_PASSWORD})).status_code == 200
    assert (await client.post(TOKEN, data=form)).status_code == 401
    # the access token and the refresh token issued before are dead
    assert (await client.get("/api/users/me", headers=headers)).status_code == 401
    refresh = await client.post(
        "/api/auth/refresh", json={"refresh_token": issued["refresh_token"]}
    )
    assert refresh.status_code == 401
    # the link is spent, and the older one was deleted
    (row,) = await _tokens(session, user)
    assert row.token_hash == token_digest(link.token) and row.used_at is not None
    again = {"token": link.token, "new_password": "yet another passphrase"}
    _assert_invalid(await client.post(RESET, json=again))
    _assert_invalid(await client.post(RESET, json={**again, "token": older.token}))


async def test_a_reset_is_told_to_the_address_without_the_link(
    client: httpx.AsyncClient, mailbox: Mailbox, user: User
) -> None:
    link = await _reset_link(client, mailbox, user)

    response = await client.post(RESET, json={"token": link.token, "new_password": NEW_PASSWORD})

    assert response.status_code == 204, response.text
    secrets = (link.token, NEW_PASSWORD, DEFAULT_PASSWORD)
    notice = the_password_notice(mailbox, user.email, username=user.username, secrets=secrets)
    assert "An administrator" not in notice.text


async def test_a_reset_verifies_the_address(
    client: httpx.AsyncClient, session: AsyncSession, mailbox: Mailbox, user: User
) -> None:
    assert user.email_verified_at is None
    link = await _reset_link(client, mailbox, user)
    response = await client.post(RESET, json={"token": link.token, "new_password": NEW_PASSWORD})
    assert response.status_code == 204, response.text
    # the link reached that mailbox: as good as a verification link
    await session.refresh(user)
    assert user.email_verified_at is not None


@pytest.mark.parametrize("token", ["", "x" * 129], ids=["empty", "too-long"])
async def test_malformed_tokens_are_a_422(client: httpx.AsyncClient, token: str) -> None:
    response = await client.post(RESET, json={"token": token, "new_password": NEW_PASSWORD})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize(
    "body",
    [{}, {"token": "t"}, {"new_password": NEW_PASSWORD}, [], {"token": 1, "new_password": 2}],
)
async def test_incomplete_bodies_are_a_422(client: httpx.AsyncClient, body: object) -> None:
    response = await client.post(RESET, json=body)
    assert response.status_code == 422, response.text


async def test_an_unknown_token_is_refused(client: httpx.AsyncClient) -> None:
    body = {"token": "an-unknown-token-of-the-right-shape-0123456", "new_password": NEW_PASSWORD}
    _assert_invalid(await client.post(RESET, json=body))


async def test_an_expired_token_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, mailbox: Mailbox, user: User
) -> None:
    link = await _reset_link(client, mailbox, user)
    await session.execute(
        update(AccountToken)
        .where(AccountToken.token_hash == token_digest(link.token))
        .values(expires_at=func.now() - dt.timedelta(seconds=1))
    )
    _assert_invalid(
        await client.post(RESET, json={"token": link.token, "new_password": NEW_PASSWORD})
    )
    assert await login(client, user.username)  # the password is unchanged


async def test_a_weak_password_is_a_422_and_leaves_the_link_usable(
    client: httpx.AsyncClient, mailbox: Mailbox, user: User
) -> None:
    link = await _reset_link(client, mailbox, user)

    weak = await client.post(RESET, json={"token": link.token, "new_password": "short"})
    assert weak.status_code == 422, weak.text
    assert weak.json()["error"]["details"][0]["loc"] == ["body", "new_password"]

    response = await client.post(RESET, json={"token": link.token, "new_password": NEW_PASSWORD})
    assert response.status_code == 204, response.text


async def test_a_verification_token_is_no_reset_token(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    account = await register(client, prefix="purpose")
    verify = mailbox.last_to(f"{account.username}@example.com", "Verify your email address")
    body = {"token": verify.token, "new_password": NEW_PASSWORD}
    _assert_invalid(await client.post(RESET, json=body))


async def test_a_link_sent_to_an_old_address_dies_with_the_change_for_good(
    client: httpx.AsyncClient, mailbox: Mailbox, user: User, user_headers: dict[str, str]
) -> None:
    # given: a link sent to the address, which then moves away and back
    old_email = user.email
    link = await _reset_link(client, mailbox, user)
    for email in (f"new-{old_email}", old_email):
        changed = await client.patch(
            "/api/users/me",
            json={"email": email, "current_password": DEFAULT_PASSWORD},
            headers=user_headers,
        )
        assert changed.status_code == 200, changed.text

    # then: the address is the link's again, and still the link is dead
    _assert_invalid(
        await client.post(RESET, json={"token": link.token, "new_password": NEW_PASSWORD})
    )


async def test_a_link_dies_with_any_new_password(
    client: httpx.AsyncClient,
    mailbox: Mailbox,
    user_factory: UserFactory,
    superuser_headers: dict[str, str],
) -> None:
    # A link left in a mailbox someone else reads must not outlive the password it replaced.
    own, by_admin = await user_factory(), await user_factory()
    own_link = await _reset_link(client, mailbox, own)
    admin_link = await _reset_link(client, mailbox, by_admin)

    changed = await client.post(
        "/api/users/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": "the owner's own choice"},
        headers=await login(client, own.username),
    )
    set_by_admin = await client.patch(
        f"/api/users/{by_admin.id}",
        json={"password": "the admin's choice 123"},
        headers=superuser_headers,
    )

    assert changed.status_code == 204, changed.text
    assert set_by_admin.status_code == 200, set_by_admin.text
    for link in (own_link, admin_link):
        _assert_invalid(
            await client.post(RESET, json={"token": link.token, "new_password": NEW_PASSWORD})
        )


async def test_a_user_deactivated_after_asking_cannot_reset(
    client: httpx.AsyncClient, session: AsyncSession, mailbox: Mailbox, user: User
) -> None:
    link = await _reset_link(client, mailbox, user)
    user.is_active = False
    await session.flush()
    _assert_invalid(
        await client.post(RESET, json={"token": link.token, "new_password": NEW_PASSWORD})
    )


# --- answering alike -------------------------------------------------------------------


@pytest.fixture
def recovery_floor(monkeypatch: pytest.MonkeyPatch) -> Iterator[float]:
    seconds = 0.3
    monkeypatch.setenv("PASSWORD_RECOVERY_MIN_SECONDS", str(seconds))
    get_settings.cache_clear()
    yield seconds
    monkeypatch.undo()
    get_settings.cache_clear()


async def test_no_answer_comes_sooner_than_the_floor_with_or_without_an_account(
    client: httpx.AsyncClient, mailbox: Mailbox, user: User, recovery_floor: float
) -> None:
    """A lower bound only (a slow machine can't make it fail): the mail an account
    costs is hidden under the floor, so neither answer is measurably quicker."""
    for address in (user.email, "not-an-account@example.com"):
        started = time.monotonic()
        await _recover(client, address)
        assert time.monotonic() - started >= recovery_floor
    assert len(mailbox.to(user.email, SUBJECT)) == 1


# --- committing for real: races ----------------------------------------------------------


async def test_two_concurrent_resets_with_one_link_give_one_success(
    committing: tuple[httpx.AsyncClient, Credentials], mailbox: Mailbox
) -> None:
    client, account = committing
    email = f"{account.username}@example.com"
    await _recover(client, email)
    token = mailbox.last_to(email, SUBJECT).token

    responses = await asyncio.gather(
        client.post(RESET, json={"token": token, "new_password": "first passphrase"}),
        client.post(RESET, json={"token": token, "new_password": "second passphrase"}),
    )

    assert sorted(r.status_code for r in responses) == [204, 400], [r.text for r in responses]
    winner = next(i for i, r in enumerate(responses) if r.status_code == 204)
    password = ("first passphrase", "second passphrase")[winner]
    assert await login(client, account.username, password)


async def test_concurrent_asks_for_one_address_send_three_links(
    committing: tuple[httpx.AsyncClient, Credentials], mailbox: Mailbox
) -> None:
    client, account = committing
    email = f"{account.username}@example.com"

    await asyncio.gather(*(_recover(client, email) for _ in range(6)))

    assert len(mailbox.to(email, SUBJECT)) == 3


async def test_a_reset_lifts_a_login_lockout(
    committing: tuple[httpx.AsyncClient, Credentials],
    mailbox: Mailbox,
    engine: AsyncEngine,
) -> None:
    # given the account locked out by failed logins (counted in their own transactions)
    client, account = committing
    email = f"{account.username}@example.com"
    wrong = {"username": account.username, "password": "wrong guess"}
    for _ in range(get_settings().login_max_failures):
        assert (await client.post(TOKEN, data=wrong)).status_code == 401
    assert (await client.post(TOKEN, data=account.login_form())).status_code == 429

    # when the owner resets the password through the emailed link
    await _recover(client, email)
    token = mailbox.last_to(email, SUBJECT).token
    response = await client.post(RESET, json={"token": token, "new_password": NEW_PASSWORD})
    assert response.status_code == 204, response.text

    # then the new password logs in at once: the link proved who is asking
    assert await login(client, account.username, NEW_PASSWORD)
    async with engine.connect() as conn:
        left = await conn.scalar(
            select(func.count()).where(LoginThrottle.login == account.username.lower())
        )
    assert left == 0


async def test_a_link_mailed_before_a_deactivation_stays_dead_after_reactivation(
    client: httpx.AsyncClient, mailbox: Mailbox, user: User, superuser_headers: dict[str, str]
) -> None:
    link = await _reset_link(client, mailbox, user)
    for active in (False, True):
        response = await client.patch(
            f"/api/users/{user.id}", headers=superuser_headers, json={"is_active": active}
        )
        assert response.status_code == 200, response.text
    _assert_invalid(
        await client.post(RESET, json={"token": link.token, "new_password": NEW_PASSWORD})
    )
