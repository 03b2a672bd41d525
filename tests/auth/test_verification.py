"""Email verification: a link at registration and after every email change, a resend
throttled per address, and logins that may require it (`REQUIRE_VERIFIED_EMAIL`)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lambda_app.core.settings import (
    LOCAL_FRONTEND_URL,
    ApiSettings,
    SettingsError,
    get_settings,
    load_settings,
)
from lambda_app.db.session import transaction
from lambda_app.identity import account_emails
from lambda_app.identity.account_emails import Outcome
from lambda_app.identity.opaque_tokens import token_digest
from lambda_app.models import AccountToken, TokenPurpose, User
from lambda_app.users import service as users_service
from lambda_app.users.schemas import UserUpdateMe
from tests.fixtures.accounts import DEFAULT_PASSWORD, Credentials, login, register
from tests.fixtures.factories import UserFactory
from tests.fixtures.mailbox import Mail, Mailbox
from tests.fixtures.polling import wait_until
from tests.fixtures.settings import api_settings

VERIFY, RESEND, ME = "/api/auth/verify-email", "/api/users/me/verify-email", "/api/users/me"
TOKEN = "/api/auth/token"
SUBJECT = "Verify your email address"
INVALID = {
    "error": {
        "code": "invalid_verification_token",
        "message": "Invalid, expired or already used verification link",
        "details": None,
    }
}


async def _registered(client: httpx.AsyncClient, mailbox: Mailbox) -> tuple[Credentials, Mail]:
    account = await register(client, prefix="verify")
    return account, mailbox.last_to(_email(account), SUBJECT)


def _email(account: Credentials) -> str:
    return f"{account.username}@example.com"


async def _verify(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(VERIFY, json={"token": token})


def _assert_invalid(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json() == INVALID


# --- the link sent at registration ----------------------------------------------------


async def test_registering_sends_a_24_hour_link_and_the_user_starts_unverified(
    client: httpx.AsyncClient, session: AsyncSession, mailbox: Mailbox
) -> None:
    account = Credentials.new("verify")
    created = await client.post("/api/auth/register", json=account.registration())

    assert created.status_code == 201, created.text
    assert created.json()["email_verified"] is False
    (mail,) = mailbox.to(_email(account))
    assert (mail.to, mail.subject) == (_email(account), SUBJECT)
    assert mail.page == f"{LOCAL_FRONTEND_URL}/verify-email"
    row = await session.scalar(
        select(AccountToken).where(AccountToken.token_hash == token_digest(mail.token))
    )
    assert row is not None and row.purpose == TokenPurpose.VERIFY_EMAIL.value
    assert abs(row.expires_at - row.created_at - dt.timedelta(hours=24)) < dt.timedelta(minutes=1)


async def test_following_the_link_verifies_the_address_once(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    account, mail = await _registered(client, mailbox)

    response = await _verify(client, mail.token)

    assert response.status_code == 204, response.text
    headers = await login(client, account.username, account.password)
    assert (await client.get(ME, headers=headers)).json()["email_verified"] is True
    _assert_invalid(await _verify(client, mail.token))  # single use


async def test_unknown_and_expired_links_are_refused(
    client: httpx.AsyncClient, session: AsyncSession, mailbox: Mailbox
) -> None:
    _, mail = await _registered(client, mailbox)
    _assert_invalid(await _verify(client, "an-unknown-token-of-the-right-shape-0123456"))

    await session.execute(
        update(AccountToken)
        .where(AccountToken.token_hash == token_digest(mail.token))
        .values(expires_at=func.now() - dt.timedelta(seconds=1))
    )
    _assert_invalid(await _verify(client, mail.token))


@pytest.mark.parametrize(
    "body", [{}, {"token": ""}, {"token": "x" * 129}, {"token": 5}, {"token": "t", "extra": 1}]
)
async def test_malformed_bodies_are_a_422(client: httpx.AsyncClient, body: object) -> None:
    response = await client.post(VERIFY, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


async def test_a_reset_token_is_no_verification_token(
    client: httpx.AsyncClient, mailbox: Mailbox, user: User
) -> None:
    await client.post("/api/auth/password-recovery", json={"email": user.email})
    reset = mailbox.last_to(user.email, "Reset your password")
    _assert_invalid(await _verify(client, reset.token))


# --- resending ----------------------------------------------------------------------------


async def test_a_user_can_have_a_new_link_sent(
    client: httpx.AsyncClient, mailbox: Mailbox, user: User, user_headers: dict[str, str]
) -> None:
    response = await client.post(RESEND, headers=user_headers)

    assert response.status_code == 202, response.text
    assert "message" in response.json()
    (mail,) = mailbox.to(user.email, SUBJECT)
    assert (await _verify(client, mail.token)).status_code == 204
    # once verified, there is nothing to resend
    again = await client.post(RESEND, headers=user_headers)
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "email_already_verified"


async def test_resending_is_throttled_like_recovery(
    client: httpx.AsyncClient, mailbox: Mailbox, user: User, user_headers: dict[str, str]
) -> None:
    for _ in range(get_settings().account_emails_per_hour):
        assert (await client.post(RESEND, headers=user_headers)).status_code == 202

    throttled = await client.post(RESEND, headers=user_headers)

    assert throttled.status_code == 429, throttled.text
    assert throttled.json()["error"]["code"] == "too_many_emails"
    assert 0 < int(throttled.headers["retry-after"]) <= 3600 + 1
    assert len(mailbox.to(user.email, SUBJECT)) == 3


async def test_the_subaddresses_of_one_mailbox_share_its_limit(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    # given one mailbox, and twice its hourly share of registrations at its +tag addresses
    name = Credentials.new("victim").username
    tagged = [f"{name}+{n}@Example.com" for n in range(2 * get_settings().account_emails_per_hour)]

    for n, address in enumerate(tagged):
        registration = {"username": f"{name}_{n}", "email": address, "password": DEFAULT_PASSWORD}
        created = await client.post("/api/auth/register", json=registration)
        assert created.status_code == 201, created.text  # every account is made

    # then the mailbox got its share of links, no more (RFC 5233: one mailbox)
    sent = [mail for address in tagged for mail in mailbox.to(address, SUBJECT)]
    assert len(sent) == get_settings().account_emails_per_hour


async def test_resending_needs_a_login(client: httpx.AsyncClient) -> None:
    response = await client.post(RESEND)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


# --- changing the email ---------------------------------------------------------------


async def test_a_new_email_is_unverified_and_gets_its_own_link(
    client: httpx.AsyncClient, mailbox: Mailbox, user_factory: UserFactory
) -> None:
    user = await user_factory(email_verified=True)
    headers = await login(client, user.username)
    new_email = f"changed-{user.email}"

    changed = await client.patch(
        ME, json={"email": new_email, "current_password": DEFAULT_PASSWORD}, headers=headers
    )

    assert changed.status_code == 200, changed.text
    assert changed.json()["email"] == new_email and changed.json()["email_verified"] is False
    mail = mailbox.last_to(new_email, SUBJECT)
    assert (await _verify(client, mail.token)).status_code == 204
    assert (await client.get(ME, headers=headers)).json()["email_verified"] is True


async def test_a_link_to_the_old_address_no_longer_verifies_even_once_it_is_back(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    account, old_link = await _registered(client, mailbox)
    headers = await login(client, account.username, account.password)
    for email in (f"new-{_email(account)}", _email(account)):
        changed = await client.patch(
            ME, json={"email": email, "current_password": account.password}, headers=headers
        )
        assert changed.status_code == 200, changed.text

    _assert_invalid(await _verify(client, old_link.token))
    assert (await client.get(ME, headers=headers)).json()["email_verified"] is False


async def test_the_same_address_in_other_case_keeps_the_verification(
    client: httpx.AsyncClient, mailbox: Mailbox, user_factory: UserFactory
) -> None:
    user = await user_factory(email_verified=True)
    headers = await login(client, user.username)

    changed = await client.patch(ME, json={"email": user.email.upper()}, headers=headers)

    assert changed.json()["email_verified"] is True
    assert mailbox.to(user.email) == []


async def test_a_superuser_changing_the_email_clears_it_and_sends_a_link(
    client: httpx.AsyncClient,
    mailbox: Mailbox,
    user_factory: UserFactory,
    superuser_headers: dict[str, str],
) -> None:
    user = await user_factory(email_verified=True)
    new_email = f"admin-set-{user.email}"

    changed = await client.patch(
        f"/api/users/{user.id}", json={"email": new_email}, headers=superuser_headers
    )

    assert changed.status_code == 200, changed.text
    assert changed.json()["email_verified"] is False
    assert len(mailbox.to(new_email, SUBJECT)) == 1


# --- requiring it to log in -------------------------------------------------------------


@pytest.fixture
def verification_required(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("REQUIRE_VERIFIED_EMAIL", "true")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


async def test_an_unverified_login_with_the_right_password_is_a_403_with_a_new_link(
    committing: tuple[httpx.AsyncClient, Credentials],
    mailbox: Mailbox,
    verification_required: None,
) -> None:
    # (committing: the 403's link is sent in a transaction of its own)
    client, account = committing
    email = _email(account)

    # the right password: 403, and a fresh link (the registration's was the first)
    refused = await client.post(TOKEN, data=account.login_form())
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "email_not_verified"
    assert len(mailbox.to(email, SUBJECT)) == 2
    # a wrong password: the usual 401, nothing sent
    wrong = await client.post(TOKEN, data={**account.login_form(), "password": "wrong pass"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_credentials"
    assert len(mailbox.to(email, SUBJECT)) == 2

    # the link sent with the 403 works, and then so does the login
    assert (await _verify(client, mailbox.last_to(email, SUBJECT).token)).status_code == 204
    assert (await client.post(TOKEN, data=account.login_form())).status_code == 200


async def test_unknown_users_get_the_same_401_when_verification_is_required(
    client: httpx.AsyncClient, verification_required: None
) -> None:
    response = await client.post(TOKEN, data={"username": "no_such_user", "password": "pw-pw-pw"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


async def test_a_verified_user_logs_in_when_verification_is_required(
    client: httpx.AsyncClient, user_factory: UserFactory, verification_required: None
) -> None:
    user = await user_factory(email_verified=True)
    response = await client.post(
        TOKEN, data={"username": user.username, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200, response.text


def test_requiring_verification_without_mail_is_refused_at_start_up() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(
            ApiSettings,
            environment="prod",
            jwt_secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt",
            require_verified_email=True,
        )
    assert "REQUIRE_VERIFIED_EMAIL" in str(refused.value)


# --- a stage without mail -------------------------------------------------------------


async def test_without_a_mail_backend_registration_works_and_nothing_is_sent(
    session: AsyncSession, user: User
) -> None:
    settings = api_settings(
        environment="dev", jwt_secret_arn="arn:aws:secretsmanager:us-east-1:1:secret:jwt"
    )
    assert settings.mail_backend is None

    delivery = await account_emails.prepare_verification(session, user, settings)

    assert delivery.outcome is Outcome.NOT_SENT and delivery.message is None
    tokens = await session.scalar(select(func.count()).where(AccountToken.user_id == user.id))
    assert tokens == 0


# --- races, committing for real ----------------------------------------------------------


async def test_two_concurrent_uses_of_one_link_give_one_success(
    committing: tuple[httpx.AsyncClient, Credentials], mailbox: Mailbox
) -> None:
    client, account = committing
    token = mailbox.last_to(_email(account), SUBJECT).token

    responses = await asyncio.gather(_verify(client, token), _verify(client, token))

    assert sorted(r.status_code for r in responses) == [204, 400], [r.text for r in responses]


async def test_a_verification_committed_while_the_email_changes_stays_with_the_old_one(
    committing: tuple[httpx.AsyncClient, Credentials], mailbox: Mailbox, engine: AsyncEngine
) -> None:
    client, account = committing
    link = mailbox.last_to(_email(account), SUBJECT)
    new_email = f"moved-{_email(account)}"
    async with transaction() as patching:  # committed at the end, as a request's would be
        # given: an email change that loaded the user while still unverified...
        user = await patching.scalar(select(User).where(User.username == account.username))
        assert user is not None and not user.email_verified
        # ...when the old address's link is followed and committed first
        assert (await _verify(client, link.token)).status_code == 204
        change = UserUpdateMe(email=new_email, current_password=account.password)
        await users_service.update_me(patching, user, change, get_settings())
        assert mailbox.to(new_email) == []  # not before the change has committed

    # then: the new address is unverified, and its link went out after the commit
    maker = async_sessionmaker(engine, expire_on_commit=False)
    async with maker() as reading:
        stored = await reading.scalar(select(User).where(User.username == account.username))
    assert stored is not None and stored.email == new_email and not stored.email_verified
    assert len(mailbox.to(new_email, SUBJECT)) == 1


async def test_a_link_followed_during_an_email_change_waits_and_is_refused(
    committing: tuple[httpx.AsyncClient, Credentials], mailbox: Mailbox, engine: AsyncEngine
) -> None:
    client, account = committing
    link = mailbox.last_to(_email(account), SUBJECT)
    async with transaction() as patching:  # committed at the end, while the link waits
        # given: an email change flushed, its row lock held
        user = await patching.scalar(select(User).where(User.username == account.username))
        assert user is not None
        new_email = f"moved-{_email(account)}"
        change = UserUpdateMe(email=new_email, current_password=account.password)
        await users_service.update_me(patching, user, change, get_settings())
        # when: the old address's link is followed; it waits for the user's row
        following = asyncio.create_task(_verify(client, link.token))
        await wait_until(
            lambda: _waiting_for_a_lock(engine),
            lambda: "the verification never waited for the user's row",
        )

    # then: it sees the new address, and refuses the old one's link
    _assert_invalid(await following)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    async with maker() as reading:
        stored = await reading.scalar(select(User).where(User.username == account.username))
    assert stored is not None and not stored.email_verified


async def _waiting_for_a_lock(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        waiting = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        )
    return bool(waiting)


async def test_an_address_on_an_idn_domain_is_mailed_in_punycode(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    account = Credentials.new("idn")
    body = {**account.registration(), "email": f"{account.username}@exämple.com"}
    assert (await client.post("/api/auth/register", json=body)).status_code == 201
    (mail,) = mailbox.to(f"{account.username}@xn--exmple-cua.com")
    assert mail.subject == SUBJECT


async def test_an_address_no_mail_can_reach_is_refused_at_registration(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    # A non-ASCII local part needs SMTPUTF8, which SES lacks: the account would never get
    # a verification or reset link, so the address is refused before any account exists.
    account = Credentials.new("utf8")
    body = {**account.registration(), "email": f"zoë-{account.username}@example.com"}
    response = await client.post("/api/auth/register", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["loc"] == ["body", "email"]
    login = await client.post(
        "/api/auth/token", data={"username": account.username, "password": account.password}
    )
    assert login.status_code == 401  # no account was made
    assert mailbox.to(body["email"]) == []
