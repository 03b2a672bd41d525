import httpx
import pytest

from lambda_app.models import User
from tests.factories import DEFAULT_PASSWORD, UserFactory, login


async def test_me_returns_the_current_user(
    client: httpx.AsyncClient, user: User, user_headers: dict[str, str]
) -> None:
    response = await client.get("/api/users/me", headers=user_headers)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == user.id and body["username"] == user.username
    assert "hashed_password" not in body


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
)
async def test_me_without_a_valid_token_is_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/api/users/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "not_authenticated"


async def test_expired_token_is_401(client: httpx.AsyncClient, user: User) -> None:
    import datetime as dt

    from lambda_app.identity.signing_key import get_jwt_secret
    from lambda_app.identity.tokens import create_access_token

    token = create_access_token(
        user_id=user.id, token_version=0, secret=get_jwt_secret(), lifetime=dt.timedelta(seconds=-1)
    )
    response = await client.get("/api/users/me", headers={"Authorization": f"Bearer {token.token}"})
    assert response.status_code == 401


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


async def test_change_password_revokes_old_tokens(
    client: httpx.AsyncClient, user: User, user_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/users/me/password",
        headers=user_headers,
        json={"current_password": DEFAULT_PASSWORD, "new_password": "brand-new-pass"},
    )
    assert response.status_code == 204
    assert response.content == b""
    # The token issued before the change no longer works...
    assert (await client.get("/api/users/me", headers=user_headers)).status_code == 401
    # ...the old password no longer logs in, the new one does.
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
