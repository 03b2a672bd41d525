import datetime as dt
import unicodedata
import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.core.settings import get_settings
from lambda_app.identity.password_attempts import keys_for
from lambda_app.identity.signing_key import signing_key_for
from lambda_app.identity.tokens import claimed_kid, verify_access_token
from lambda_app.models import LoginThrottle, User
from tests.fixtures.accounts import DEFAULT_PASSWORD, Credentials, login, register
from tests.fixtures.factories import UserFactory


async def test_token_with_username(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post(
        "/api/auth/token", data={"username": user.username, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == get_settings().access_token_expire_minutes * 60
    token = body["access_token"]
    claims = verify_access_token(token, signing_key_for(claimed_kid(token)))
    assert claims.user_id == user.id


async def test_a_username_logs_in_in_any_spelling_its_slug_folds(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    # Uniqueness is decided on the slug: with `Mallory_X` taken, so is `mallory-x`, and
    # both name this one account.
    user = await user_factory(username=f"Mallory_{uuid.uuid4().hex[:8]}")
    for spelling in (user.username.lower(), user.username.upper().replace("_", "-")):
        response = await client.post(
            "/api/auth/token", data={"username": spelling, "password": DEFAULT_PASSWORD}
        )
        assert response.status_code == 200, (spelling, response.text)


async def test_an_email_logs_in_in_any_form_its_normalization_folds(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    # As registration decides that an address is taken: in any case, and a domain
    # beyond ASCII in its Unicode or its punycode form.
    local = f"a{uuid.uuid4().hex[:8]}"
    await user_factory(email=f"{local}@bücher.example")
    for spelling in (f"{local.upper()}@BÜCHER.example", f"{local}@xn--bcher-kva.example"):
        response = await client.post(
            "/api/auth/token", data={"username": spelling, "password": DEFAULT_PASSWORD}
        )
        assert response.status_code == 200, (spelling, response.text)
    # what registration would refuse as no address names no account
    response = await client.post(
        "/api/auth/token",
        data={"username": f"{local}@@bücher.example", "password": DEFAULT_PASSWORD},
    )
    assert response.status_code == 401, response.text


async def test_unknown_user_and_wrong_password_get_the_same_401(
    client: httpx.AsyncClient, user: User
) -> None:
    unknown = await client.post(
        "/api/auth/token", data={"username": "ghost", "password": "whatever1"}
    )
    wrong = await client.post(
        "/api/auth/token", data={"username": user.username, "password": "wrong-pass"}
    )
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    assert unknown.json()["error"]["code"] == "invalid_credentials"
    assert unknown.headers["www-authenticate"] == "Bearer"


async def test_inactive_user_cannot_get_a_token(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    inactive = await user_factory(is_active=False)
    response = await client.post(
        "/api/auth/token", data={"username": inactive.username, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


async def test_token_requires_form_fields(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/token", data={"username": "x"})
    assert response.status_code == 422


async def test_outdated_hash_is_upgraded_at_login(
    client: httpx.AsyncClient, session: AsyncSession, user: User
) -> None:
    from pwdlib.hashers.argon2 import Argon2Hasher

    # A hash made with weaker (older) parameters than the configured ones.
    user.hashed_password = Argon2Hasher(memory_cost=8192, time_cost=1, parallelism=1).hash(
        DEFAULT_PASSWORD
    )
    await session.flush()
    old_hash = user.hashed_password
    response = await client.post(
        "/api/auth/token", data={"username": user.username, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200
    await session.refresh(user)
    assert user.hashed_password != old_hash
    assert "m=19456" in user.hashed_password


NFC_PASSWORD = "pässwörd-123"
NFD_PASSWORD = unicodedata.normalize("NFD", NFC_PASSWORD)  # ä as a + U+0308, as macOS types


async def test_a_password_logs_in_in_any_unicode_normalization_form(
    client: httpx.AsyncClient,
) -> None:
    # NIST SP 800-63B: passwords are compared NFKC-normalized, so the same characters
    # typed on another keyboard (composed or not) are the same password.
    assert NFD_PASSWORD != NFC_PASSWORD
    credentials = await register(client, Credentials(f"nf_{uuid.uuid4().hex[:8]}", NFC_PASSWORD))

    assert await login(client, credentials.username, NFD_PASSWORD)  # a 200, or it fails


async def test_a_hash_of_a_password_as_typed_logs_in_and_is_rehashed_normalized(
    client: httpx.AsyncClient, session: AsyncSession, user: User
) -> None:
    from pwdlib.hashers.argon2 import Argon2Hasher

    # given: a hash made before passwords were normalized, from the NFD form as typed
    hasher = Argon2Hasher()
    user.hashed_password = hasher.hash(NFD_PASSWORD)
    await session.flush()

    # when: its owner logs in (a 200, or it fails), typing it as before
    await login(client, user.username, NFD_PASSWORD)

    # then: the stored hash is now the normalized password's, which any form logs in with
    await session.refresh(user)
    assert hasher.verify(NFC_PASSWORD, user.hashed_password)
    await login(client, user.username, NFC_PASSWORD)


async def test_finished_windows_of_login_names_are_deleted_a_few_at_a_time(
    client: httpx.AsyncClient, session: AsyncSession, user: User
) -> None:
    # given: eight login names nobody has tried since their window ended
    window = dt.timedelta(seconds=get_settings().login_failure_window_seconds)
    ended = dt.datetime.now(dt.UTC) - window - dt.timedelta(seconds=1)
    names = [f"login:forgotten-name-{n}" for n in range(8)]
    session.add_all(LoginThrottle(login=n, failures=3, window_started_at=ended) for n in names)
    await session.flush()

    # when: one login comes
    response = await client.post(
        "/api/auth/token", data={"username": user.username, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200

    # then: five of them (the bound) are gone
    left = await session.scalar(select(func.count()).where(LoginThrottle.login.in_(names)))
    assert left == 8 - 5


async def test_token_answers_are_never_stored_by_a_cache(
    client: httpx.AsyncClient, user: User
) -> None:
    # RFC 6749 5.1: Cache-Control: no-store and Pragma: no-cache on every answer with tokens.
    login = await client.post(
        "/api/auth/token", data={"username": user.username, "password": DEFAULT_PASSWORD}
    )
    refreshed = await client.post(
        "/api/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
    )
    for answer in (login, refreshed):
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["pragma"] == "no-cache"


@pytest.mark.parametrize("grant_type", ["", "client_credentials", "PASSWORD"])
async def test_a_grant_type_other_than_password_is_refused(
    client: httpx.AsyncClient, user: User, grant_type: str
) -> None:
    # The right password: a grant type let through would log in. An empty one is no
    # exception to the schema's `^password$` (a form reads it as absent otherwise).
    form = {"username": user.username, "password": DEFAULT_PASSWORD, "grant_type": grant_type}

    response = await client.post("/api/auth/token", data=form)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [(d["loc"], d["type"]) for d in error["details"]] == [
        (["body", "grant_type"], "string_pattern_mismatch")
    ]


@pytest.mark.parametrize("field", ["username", "password", "grant_type"])
async def test_a_form_field_sent_twice_is_refused_before_any_login(
    client: httpx.AsyncClient, session: AsyncSession, user: User, field: str
) -> None:
    # FastAPI would take the last value: `username=other&username=<user>` logging in as user.
    # A wrong password: a login attempted would count a failure against the user.
    fields = {"username": user.username, "password": "wrong-pass", "grant_type": "password"}
    body = "&".join(
        f"{name}={value}&{name}={value}" if name == field else f"{name}={value}"
        for name, value in fields.items()
    )
    response = await client.post(
        "/api/auth/token",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"] == [
        {"loc": ["body", field], "message": "Sent more than once", "type": "repeated_field"}
    ]
    counted = select(func.count()).where(
        LoginThrottle.login.in_(keys_for(login=user.username, user_id=user.id))
    )
    assert await session.scalar(counted) == 0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("&".join(f"f{i}=x" for i in range(1001)), "application/x-www-form-urlencoded"),
        ("--xyz\r\nnot a part", "multipart/form-data; boundary=xyz"),
        ("username=a", "multipart/form-data"),  # no boundary
    ],
)
async def test_a_form_that_cannot_be_parsed_is_the_documented_400(
    app: FastAPI, client: httpx.AsyncClient, body: str, content_type: str
) -> None:
    response = await client.post(
        "/api/auth/token", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert "400" in app.openapi()["paths"]["/api/auth/token"]["post"]["responses"]
