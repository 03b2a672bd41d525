"""Logging out everywhere: DELETE /api/users/me/sessions (oneself) and
DELETE /api/users/{id}/sessions (a superuser, for anyone)."""

from __future__ import annotations

import httpx

from lambda_app.models import User
from tests.fixtures.accounts import DEFAULT_PASSWORD
from tests.fixtures.factories import UserFactory


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)


async def _log_in(client: httpx.AsyncClient, username: str) -> tuple[dict[str, str], str]:
    """A new session of the user's: its bearer headers and its refresh token."""
    response = await client.post(
        "/api/auth/token", data={"username": username, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200, response.text
    tokens = response.json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}, tokens["refresh_token"]


async def _refreshes(client: httpx.AsyncClient, refresh_token: str) -> int:
    response = await client.post("/api/auth/refresh", json={"refresh_token": refresh_token})
    return response.status_code


async def test_logging_out_everywhere_ends_every_session_of_the_caller_only(
    client: httpx.AsyncClient, user: User, user_factory: UserFactory
) -> None:
    # given: the user on two devices, and someone else
    phone, phone_refresh = await _log_in(client, user.username)
    laptop, laptop_refresh = await _log_in(client, user.username)
    other = await user_factory()
    others, others_refresh = await _log_in(client, other.username)

    # when: from the phone
    response = await client.delete("/api/users/me/sessions", headers=phone)

    # then: both devices are out at once, access and refresh tokens alike
    assert (response.status_code, response.content) == (204, b"")
    for headers in (phone, laptop):
        assert_error(await client.get("/api/users/me", headers=headers), 401, "not_authenticated")
    for refresh_token in (phone_refresh, laptop_refresh):
        assert await _refreshes(client, refresh_token) == 401
    # the password still works, and nobody else was touched
    again, _ = await _log_in(client, user.username)
    assert (await client.get("/api/users/me", headers=again)).status_code == 200
    assert (await client.get("/api/users/me", headers=others)).status_code == 200
    assert await _refreshes(client, others_refresh) == 200


async def test_logging_out_everywhere_needs_a_live_session(client: httpx.AsyncClient) -> None:
    assert_error(await client.delete("/api/users/me/sessions"), 401, "not_authenticated")


async def test_a_superuser_logs_a_user_out_everywhere(
    client: httpx.AsyncClient,
    user: User,
    superuser: User,
    superuser_headers: dict[str, str],
) -> None:
    # given
    headers, refresh_token = await _log_in(client, user.username)

    # when
    response = await client.delete(f"/api/users/{user.id}/sessions", headers=superuser_headers)

    # then: the user is out, the superuser is not, and the account is unchanged
    assert (response.status_code, response.content) == (204, b"")
    assert_error(await client.get("/api/users/me", headers=headers), 401, "not_authenticated")
    assert await _refreshes(client, refresh_token) == 401
    assert (await client.get("/api/users/me", headers=superuser_headers)).status_code == 200
    account = await client.get(f"/api/users/{user.id}", headers=superuser_headers)
    assert account.json()["is_active"] is True
    assert (await _log_in(client, user.username))[0]


async def test_only_a_superuser_logs_others_out(
    client: httpx.AsyncClient,
    user: User,
    superuser: User,
    user_headers: dict[str, str],
    superuser_headers: dict[str, str],
) -> None:
    # given: a session of the superuser's that the user would end
    target = f"/api/users/{superuser.id}/sessions"

    # then
    assert_error(await client.delete(target, headers=user_headers), 403, "permission_denied")
    assert_error(await client.delete(target), 401, "not_authenticated")
    assert (await client.get("/api/users/me", headers=superuser_headers)).status_code == 200


async def test_logging_out_a_missing_or_malformed_user_is_refused(
    client: httpx.AsyncClient, superuser_headers: dict[str, str]
) -> None:
    missing = await client.delete("/api/users/2147483647/sessions", headers=superuser_headers)
    assert_error(missing, 404, "user_not_found")
    for malformed in ("0", "+1", "abc"):
        response = await client.delete(
            f"/api/users/{malformed}/sessions", headers=superuser_headers
        )
        assert_error(response, 422, "validation_error")
