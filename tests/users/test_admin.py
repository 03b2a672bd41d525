import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.models import User
from tests.fixtures.accounts import DEFAULT_PASSWORD, login
from tests.fixtures.factories import UserFactory
from tests.fixtures.mailbox import Mailbox, the_password_notice

LARGEST_ID = 2**31 - 1
USER_NOT_FOUND = {"error": {"code": "user_not_found", "message": "User not found", "details": None}}


async def test_list_users_is_paginated_in_id_order(
    client: httpx.AsyncClient,
    superuser: User,
    superuser_headers: dict[str, str],
    user_factory: UserFactory,
) -> None:
    created = [await user_factory() for _ in range(5)]
    expected_ids = sorted([superuser.id, *(u.id for u in created)])

    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = await client.get("/api/users", headers=superuser_headers, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        seen.extend(item["id"] for item in page["items"])
        assert all("hashed_password" not in item for item in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [i for i in seen if i in expected_ids] == expected_ids
    assert seen == sorted(seen)
    assert pages >= 3


async def test_list_users_forbidden_for_regular_user(
    client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    response = await client.get("/api/users", headers=user_headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


async def test_list_users_requires_auth(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/users")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_user_reads_their_own_id_and_a_superuser_any(
    client: httpx.AsyncClient,
    user: User,
    user_headers: dict[str, str],
    superuser_headers: dict[str, str],
) -> None:
    for headers in (user_headers, superuser_headers):
        response = await client.get(f"/api/users/{user.id}", headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["email"] == user.email
    # (another user's id, to anyone but a superuser: tests/reliability/test_auth_attacks.py)


async def test_a_missing_user_is_404(
    client: httpx.AsyncClient, superuser_headers: dict[str, str]
) -> None:
    # The largest id an int4 holds: never taken, and still in range (ids beyond it, and
    # malformed ones, are 422s: tests/reliability/test_hostile_input.py).
    path = f"/api/users/{LARGEST_ID}"
    for method, body in (("GET", None), ("PATCH", {"first_name": "X"}), ("DELETE", None)):
        response = await client.request(method, path, headers=superuser_headers, json=body)
        assert response.status_code == 404, method
        assert response.json() == USER_NOT_FOUND, method


async def test_get_user_requires_auth(client: httpx.AsyncClient, user: User) -> None:
    assert (await client.get(f"/api/users/{user.id}")).status_code == 401


async def test_superuser_updates_any_user(
    client: httpx.AsyncClient, superuser_headers: dict[str, str], user: User
) -> None:
    issued_before = await login(client, user.username)
    path = f"/api/users/{user.id}"
    response = await client.patch(
        path, headers=superuser_headers, json={"is_active": False, "last_name": "Changed"}
    )
    assert response.status_code == 200
    assert response.json()["is_active"] is False and response.json()["last_name"] == "Changed"
    # A deactivated user can no longer log in.
    token = await client.post(
        "/api/auth/token", data={"username": user.username, "password": DEFAULT_PASSWORD}
    )
    assert token.status_code == 401

    # Reactivated, it logs in again, and its access tokens from before stay dead for good.
    reactivated = await client.patch(path, headers=superuser_headers, json={"is_active": True})
    assert reactivated.status_code == 200, reactivated.text
    assert (await client.get("/api/users/me", headers=issued_before)).status_code == 401
    again = await login(client, user.username)
    assert (await client.get("/api/users/me", headers=again)).status_code == 200


async def test_superuser_sets_a_password(
    client: httpx.AsyncClient, superuser_headers: dict[str, str], user: User
) -> None:
    response = await client.patch(
        f"/api/users/{user.id}", headers=superuser_headers, json={"password": "set-by-admin-1"}
    )
    assert response.status_code == 200
    assert (await login(client, user.username, "set-by-admin-1"))["Authorization"].startswith(
        "Bearer "
    )


async def test_a_superusers_password_change_is_told_to_the_accounts_address_as_theirs(
    client: httpx.AsyncClient, user: User, superuser_headers: dict[str, str]
) -> None:
    response = await client.patch(
        f"/api/users/{user.id}", headers=superuser_headers, json={"password": "admin-set-pw-2"}
    )

    assert response.status_code == 200, response.text
    secrets = ("admin-set-pw-2", DEFAULT_PASSWORD)
    notice = the_password_notice(Mailbox(), user.email, username=user.username, secrets=secrets)
    assert "An administrator made the change" in notice.text
    assert "knows your password" not in notice.text


async def test_a_superuser_changes_their_own_email_and_password_only_through_me(
    client: httpx.AsyncClient, superuser: User, superuser_headers: dict[str, str]
) -> None:
    # As anyone's, with the current password: a stolen token can't lock its owner out.
    path = f"/api/users/{superuser.id}"
    for change in ({"password": "set-by-myself-1"}, {"email": f"new-{superuser.email}"}):
        response = await client.patch(path, headers=superuser_headers, json=change)
        assert response.status_code == 403, (change, response.text)
        assert response.json()["error"]["code"] == "cannot_change_own_credentials", change
        assert "/api/users/me" in response.json()["error"]["message"]
    # what needs no password still goes through this route
    renamed = await client.patch(
        path, headers=superuser_headers, json={"last_name": "Renamed", "email": superuser.email}
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["last_name"] == "Renamed"
    assert await login(client, superuser.username)  # the password unchanged


async def _the_only_active_superuser(session: AsyncSession, superuser: User) -> None:
    """Others the test database holds (committed by other tests) stop being ones, for
    this test's transaction only."""
    others = update(User).where(User.id != superuser.id, User.is_superuser)
    await session.execute(others.values(is_superuser=False))


async def test_the_last_active_superuser_cannot_demote_or_deactivate_themselves(
    client: httpx.AsyncClient,
    superuser: User,
    superuser_headers: dict[str, str],
    session: AsyncSession,
) -> None:
    await _the_only_active_superuser(session, superuser)
    path = f"/api/users/{superuser.id}"

    for change in ({"is_superuser": False}, {"is_active": False}):
        response = await client.patch(path, headers=superuser_headers, json=change)

        assert response.status_code == 409, (change, response.text)
        assert response.json()["error"]["code"] == "last_superuser", change
    # still in charge
    assert (await client.get("/api/users", headers=superuser_headers)).status_code == 200


async def test_a_superuser_may_step_down_while_another_remains(
    client: httpx.AsyncClient,
    superuser: User,
    superuser_headers: dict[str, str],
    session: AsyncSession,
    user_factory: UserFactory,
) -> None:
    await _the_only_active_superuser(session, superuser)
    other = await user_factory(is_superuser=True)
    other_headers = await login(client, other.username)

    stepped_down = await client.patch(
        f"/api/users/{superuser.id}", headers=superuser_headers, json={"is_superuser": False}
    )

    assert stepped_down.status_code == 200, stepped_down.text
    # and then the other one is the last: it can't be removed
    last = await client.patch(
        f"/api/users/{other.id}", headers=other_headers, json={"is_active": False}
    )
    assert last.status_code == 409, last.text
    assert last.json()["error"]["code"] == "last_superuser"


async def test_flags_are_json_booleans(
    client: httpx.AsyncClient, superuser_headers: dict[str, str], user: User
) -> None:
    # What the schema says; parsed laxly, a 0 or a "no" would deactivate.
    for change in ({"is_active": 0}, {"is_active": "no"}, {"is_superuser": "false"}):
        response = await client.patch(
            f"/api/users/{user.id}", headers=superuser_headers, json=change
        )
        assert response.status_code == 422, (change, response.text)


async def test_update_user_forbidden_for_regular_user(
    client: httpx.AsyncClient, user_headers: dict[str, str], user_factory: UserFactory
) -> None:
    other = await user_factory()
    response = await client.patch(
        f"/api/users/{other.id}", headers=user_headers, json={"is_superuser": True}
    )
    assert response.status_code == 403


async def test_update_user_to_taken_username_is_409(
    client: httpx.AsyncClient, superuser_headers: dict[str, str], user_factory: UserFactory
) -> None:
    a, b = await user_factory(), await user_factory()
    response = await client.patch(
        f"/api/users/{a.id}", headers=superuser_headers, json={"username": b.username}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "username_taken"


async def test_superuser_deletes_a_user(
    client: httpx.AsyncClient, superuser_headers: dict[str, str], user: User, session: AsyncSession
) -> None:
    user_id = user.id
    response = await client.delete(f"/api/users/{user_id}", headers=superuser_headers)
    assert response.status_code == 204
    session.expunge_all()
    assert await session.get(User, user_id) is None
    assert (await client.get(f"/api/users/{user_id}", headers=superuser_headers)).status_code == 404


async def test_superuser_cannot_delete_themselves(
    client: httpx.AsyncClient, superuser: User, superuser_headers: dict[str, str]
) -> None:
    response = await client.delete(f"/api/users/{superuser.id}", headers=superuser_headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "cannot_delete_self"


async def test_delete_forbidden_for_regular_user(
    client: httpx.AsyncClient, user_headers: dict[str, str], user_factory: UserFactory
) -> None:
    other = await user_factory()
    assert (await client.delete(f"/api/users/{other.id}", headers=user_headers)).status_code == 403


async def test_deleted_users_token_is_rejected(
    client: httpx.AsyncClient,
    superuser_headers: dict[str, str],
    user: User,
    user_headers: dict[str, str],
) -> None:
    await client.delete(f"/api/users/{user.id}", headers=superuser_headers)
    assert (await client.get("/api/users/me", headers=user_headers)).status_code == 401
