import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.core.settings import get_settings
from lambda_app.models import User
from lambda_app.users.schemas import UserRead
from tests.fixtures.accounts import DEFAULT_PASSWORD, login
from tests.fixtures.factories import UserFactory
from tests.fixtures.mailbox import PASSWORD_NOTICE, Mailbox, the_password_notice

NOTICE = "Your email address was changed"
PASSWORD = "/api/users/me/password"


async def test_me_returns_the_current_user(
    client: httpx.AsyncClient, user: User, user_headers: dict[str, str]
) -> None:
    response = await client.get("/api/users/me", headers=user_headers)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == user.id and body["username"] == user.username
    assert "hashed_password" not in body


async def test_patch_me_updates_profile(
    client: httpx.AsyncClient, user: User, user_headers: dict[str, str]
) -> None:
    response = await client.patch(
        "/api/users/me",
        headers=user_headers,
        json={
            "first_name": "Ada",
            "username": "Ada_L",
            "email": "ADA@example.org",
            "current_password": DEFAULT_PASSWORD,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["first_name"], body["username"], body["slug"], body["email"]) == (
        "Ada",
        "Ada_L",
        "ada-l",
        "ada@example.org",
    )
    assert body["last_name"] == user.last_name  # untouched
    again = await client.get("/api/users/me", headers=user_headers)
    assert again.json()["username"] == "Ada_L"


async def test_patch_me_cannot_escalate_privileges(
    client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    response = await client.patch(
        "/api/users/me", headers=user_headers, json={"is_superuser": True}
    )
    assert response.status_code == 422
    me = await client.get("/api/users/me", headers=user_headers)
    assert me.json()["is_superuser"] is False


async def test_patch_me_to_a_taken_email_is_409(
    client: httpx.AsyncClient, user_factory: UserFactory, user_headers: dict[str, str]
) -> None:
    other = await user_factory()
    response = await client.patch(
        "/api/users/me",
        headers=user_headers,
        json={"email": other.email, "current_password": DEFAULT_PASSWORD},
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "email_taken"


async def test_a_new_email_needs_the_current_password(
    client: httpx.AsyncClient, session: AsyncSession, user: User, user_headers: dict[str, str]
) -> None:
    # A stolen access token must not move the account's reset links to another mailbox.
    email, new_email = user.email, f"moved-{user.email}"

    missing = await client.patch("/api/users/me", headers=user_headers, json={"email": new_email})
    wrong = await client.patch(
        "/api/users/me",
        headers=user_headers,
        json={"email": new_email, "current_password": "not-my-password"},
    )

    # then: refused as the password change refuses a missing or a wrong current password
    assert missing.status_code == 422, missing.text
    assert missing.json()["error"]["code"] == "validation_error"
    assert missing.json()["error"]["details"] == [
        {"loc": ["body", "current_password"], "message": "Field required", "type": "missing"}
    ]
    assert wrong.status_code == 400, wrong.text
    assert wrong.json()["error"]["code"] == "wrong_current_password"
    await session.refresh(user)
    assert user.email == email
    # the same address (in any case) changes nothing, and needs no password
    same = await client.patch("/api/users/me", headers=user_headers, json={"email": email.upper()})
    assert same.status_code == 200, same.text
    right = await client.patch(
        "/api/users/me",
        headers=user_headers,
        json={"email": new_email, "current_password": DEFAULT_PASSWORD},
    )
    assert right.status_code == 200, right.text
    assert right.json()["email"] == new_email


async def test_the_old_address_is_told_of_an_email_change_without_a_link(
    client: httpx.AsyncClient, user: User, user_headers: dict[str, str]
) -> None:
    mailbox, old_email, new_email = Mailbox(), user.email, f"elsewhere-{user.email}"

    changed = await client.patch(
        "/api/users/me",
        headers=user_headers,
        json={"email": new_email, "current_password": DEFAULT_PASSWORD},
    )

    assert changed.status_code == 200, changed.text
    (notice,) = mailbox.to(old_email)
    assert notice.subject == NOTICE and "someone who knows your" in notice.text
    # nothing to act with, and nothing of the new address or the username, for whoever
    # reads the old mailbox (perhaps not the account's owner: a typo at registration)
    assert "http" not in notice.text and "token" not in notice.text
    assert new_email not in notice.text and notice.text.startswith("Hello,")
    assert [mail.subject for mail in mailbox.to(new_email)] == ["Verify your email address"]


async def test_a_superusers_change_of_email_is_told_as_theirs(
    client: httpx.AsyncClient, user: User, superuser_headers: dict[str, str]
) -> None:
    mailbox, old_email = Mailbox(), user.email

    changed = await client.patch(
        f"/api/users/{user.id}",
        headers=superuser_headers,
        json={"email": f"moved-{user.email}"},
    )

    assert changed.status_code == 200, changed.text
    (notice,) = mailbox.to(old_email)
    assert "An administrator made the change" in notice.text
    assert "knows your password" not in notice.text and notice.text.startswith("Hello,")


PROFILE_FIELDS = ("username", "email", "first_name", "last_name")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        *(("UserUpdateMe", field) for field in (*PROFILE_FIELDS, "current_password")),
        *(
            ("UserUpdateAdmin", field)
            for field in (*PROFILE_FIELDS, "password", "is_active", "is_superuser")
        ),
    ],
)
async def test_an_explicit_null_is_refused_and_declared_so(
    client: httpx.AsyncClient,
    session: AsyncSession,
    user: User,
    user_headers: dict[str, str],
    superuser_headers: dict[str, str],
    body: str,
    field: str,
) -> None:
    # No column of a user can be null: a null that answered 200 and cleared nothing
    # would tell a client its change was made. Omitted, a field stays as it is.
    path, headers = (
        ("/api/users/me", user_headers)
        if body == "UserUpdateMe"
        else (f"/api/users/{user.id}", superuser_headers)
    )
    before = UserRead.model_validate(user).model_dump()

    response = await client.patch(path, headers=headers, json={field: None})

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["loc"] for d in error["details"]] == [["body", field]]
    await session.refresh(user)
    assert UserRead.model_validate(user).model_dump() == before
    schema = (await client.get("/api/openapi.json")).json()
    declared = schema["components"]["schemas"][body]["properties"][field]
    assert declared.get("type") in ("string", "boolean"), declared  # not also null


async def test_patch_me_requires_auth(client: httpx.AsyncClient) -> None:
    assert (await client.patch("/api/users/me", json={"first_name": "x"})).status_code == 401


async def test_change_password_replaces_the_password(
    client: httpx.AsyncClient, user: User, user_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/users/me/password",
        headers=user_headers,
        json={"current_password": DEFAULT_PASSWORD, "new_password": "brand-new-pass"},
    )
    assert response.status_code == 204
    assert response.content == b""
    # The old password no longer logs in, the new one does. (That tokens issued before the
    # change stop working: tests/reliability/test_auth_attacks.py.)
    old = await client.post(
        "/api/auth/token", data={"username": user.username, "password": DEFAULT_PASSWORD}
    )
    assert old.status_code == 401
    new_headers = await login(client, user.username, "brand-new-pass")
    assert (await client.get("/api/users/me", headers=new_headers)).status_code == 200


async def test_a_password_change_is_told_to_the_accounts_address(
    client: httpx.AsyncClient, user: User, user_headers: dict[str, str]
) -> None:
    # when
    new_password = "told-of-pass-1"
    response = await client.post(
        "/api/users/me/password",
        headers=user_headers,
        json={"current_password": DEFAULT_PASSWORD, "new_password": new_password},
    )

    # then one notice, after the commit, with neither password nor the username in it
    assert response.status_code == 204, response.text
    secrets = (DEFAULT_PASSWORD, new_password)
    notice = the_password_notice(Mailbox(), user.email, username=user.username, secrets=secrets)
    assert "someone who knows your" in notice.text
    assert "An administrator" not in notice.text


async def test_no_account_at_a_subaddress_uses_up_the_notices_of_the_mailboxs_owner(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    # given: the owner of a mailbox, and an account someone made at a +tag address of it
    owner = await user_factory()
    local, domain = owner.email.split("@")
    other = await user_factory(email=f"{local}+1@{domain}")
    password = DEFAULT_PASSWORD

    # when: the other account changes its password past the hourly share of notices
    for n in range(get_settings().account_emails_per_hour + 1):
        headers = await login(client, other.username, password)
        new = f"new password {n}"
        change = {"current_password": password, "new_password": new}
        assert (await client.post(PASSWORD, json=change, headers=headers)).status_code == 204
        password = new
    # and then the owner's password changes (say, by whoever phished it)
    headers = await login(client, owner.username)
    change = {"current_password": DEFAULT_PASSWORD, "new_password": "the thief's password"}
    assert (await client.post(PASSWORD, json=change, headers=headers)).status_code == 204

    # then the owner is told: a notice is counted per whole address, not per mailbox
    mailbox = Mailbox()
    assert len(mailbox.to(other.email, PASSWORD_NOTICE)) == get_settings().account_emails_per_hour
    the_password_notice(mailbox, owner.email, username=owner.username, secrets=[])


async def test_change_password_with_wrong_current_password_is_400(
    client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/users/me/password",
        headers=user_headers,
        json={"current_password": "not-my-password", "new_password": "brand-new-pass"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "wrong_current_password"
    assert (await client.get("/api/users/me", headers=user_headers)).status_code == 200


async def test_change_password_validates_new_password(
    client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/users/me/password",
        headers=user_headers,
        json={"current_password": DEFAULT_PASSWORD, "new_password": "pw7chrs"},
    )
    assert response.status_code == 422
