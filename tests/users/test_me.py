import httpx

from lambda_app.models import User
from tests.fixtures.accounts import DEFAULT_PASSWORD, login
from tests.fixtures.factories import UserFactory


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
        json={"first_name": "Ada", "username": "Ada_L", "email": "ADA@example.org"},
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
        "/api/users/me", headers=user_headers, json={"email": other.email}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "email_taken"


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
