"""Sessions: refresh tokens issued at login, rotated on refresh, revoked on logout."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import uuid

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from lambda_app.core.settings import get_settings
from lambda_app.identity.sessions import EXPIRED_ROWS_DELETED_PER_ISSUE
from lambda_app.models import RefreshToken, User
from tests.fixtures.accounts import DEFAULT_PASSWORD, Credentials

TOKEN, REFRESH, LOGOUT = "/api/auth/token", "/api/auth/refresh", "/api/auth/logout"
INVALID_REFRESH_TOKEN = {
    "error": {
        "code": "invalid_refresh_token",
        "message": "Invalid, expired or revoked refresh token",
        "details": None,
    }
}


async def _login(client: httpx.AsyncClient, username: str, password: str = DEFAULT_PASSWORD) -> str:
    return (await _login_for_both(client, username, password))[1]


async def _login_for_both(
    client: httpx.AsyncClient, username: str, password: str = DEFAULT_PASSWORD
) -> tuple[str, str]:
    """The access token and the refresh token of a new session."""
    response = await client.post(TOKEN, data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"]), str(response.json()["refresh_token"])


async def _me(client: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await client.get("/api/users/me", headers={"Authorization": f"Bearer {access_token}"})


def _assert_access_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(REFRESH, json={"refresh_token": token})


def _assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == INVALID_REFRESH_TOKEN
    assert response.headers["www-authenticate"] == "Bearer"


async def _row(session: AsyncSession, token: str) -> RefreshToken:
    digest = hashlib.sha256(token.encode()).hexdigest()
    row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest))
    assert row is not None
    await session.refresh(row)
    return row


# --- in the tests' rolled-back transaction -----------------------------------------------


async def test_login_returns_an_oauth2_token_response_with_a_refresh_token(
    client: httpx.AsyncClient, session: AsyncSession, user: User
) -> None:
    response = await client.post(
        TOKEN, data={"username": user.username, "password": DEFAULT_PASSWORD}
    )
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["expires_in"] == 15 * 60  # the default
    # stored only as its SHA-256, in a new family, expiring after REFRESH_TOKEN_EXPIRE_DAYS
    row = await _row(session, body["refresh_token"])
    stored = await session.scalar(
        select(func.count()).where(RefreshToken.token_hash == body["refresh_token"])
    )
    assert stored == 0
    assert row.user_id == user.id and row.spent_at is None and row.revoked_at is None
    lifetime = row.expires_at - row.created_at
    assert abs(
        lifetime - dt.timedelta(days=get_settings().refresh_token_expire_days)
    ) < dt.timedelta(minutes=1)


async def test_refresh_rotates_the_token_within_its_family(
    client: httpx.AsyncClient, session: AsyncSession, user: User
) -> None:
    # given
    first = await _login(client, user.username)
    # when
    response = await _refresh(client, first)
    # then
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and body["refresh_token"] != first
    me = await client.get(
        "/api/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.json()["id"] == user.id
    old, new = await _row(session, first), await _row(session, body["refresh_token"])
    assert old.spent_at is not None and new.spent_at is None
    assert old.family_id == new.family_id


@pytest.mark.parametrize(
    "token",
    ["unknown", "x" * 43, "not-a-token\u00e9", "with\x00nul"],
    ids=["short", "43", "unicode", "nul"],
)
async def test_unknown_tokens_get_the_one_401(client: httpx.AsyncClient, token: str) -> None:
    _assert_refused(await _refresh(client, token))


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"refresh_token": ""},
        {"refresh_token": "x" * 129},
        {"refresh_token": 42},
        {"refresh_token": None},
        {"refresh_token": "x", "extra": 1},
        [],
    ],
    ids=["missing", "empty", "too-long", "number", "null", "unknown-field", "array"],
)
@pytest.mark.parametrize("path", [REFRESH, LOGOUT])
async def test_malformed_bodies_get_422(client: httpx.AsyncClient, path: str, body: object) -> None:
    response = await client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert "x" * 129 not in response.text


async def test_a_session_ends_session_max_days_after_its_login_however_often_it_refreshes(
    client: httpx.AsyncClient, session: AsyncSession, user: User
) -> None:
    # given: a login; its session ends SESSION_MAX_DAYS later
    before = dt.datetime.now(dt.UTC)
    first = await _login(client, user.username)
    login_row = await _row(session, first)
    max_age = dt.timedelta(days=get_settings().session_max_days)
    assert login_row.session_expires_at is not None
    assert before + max_age <= login_row.session_expires_at <= dt.datetime.now(dt.UTC) + max_age
    # when: it has an hour left and refreshes
    an_hour_left = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    login_row.session_expires_at = login_row.expires_at = an_hour_left
    await session.flush()
    response = await _refresh(client, first)
    # then: the new tokens keep the session's end, and none outlives it
    assert response.status_code == 200, response.text
    refreshed = await _row(session, response.json()["refresh_token"])
    assert refreshed.session_expires_at == refreshed.expires_at == an_hour_left
    assert response.json()["expires_in"] <= 3600


async def test_a_session_stored_before_sessions_had_an_end_gets_one_at_its_next_refresh(
    client: httpx.AsyncClient, session: AsyncSession, user: User
) -> None:
    token = await _login(client, user.username)
    legacy = await _row(session, token)
    legacy.session_expires_at = None
    await session.flush()
    before = dt.datetime.now(dt.UTC)
    response = await _refresh(client, token)
    assert response.status_code == 200, response.text
    refreshed = await _row(session, response.json()["refresh_token"])
    max_age = dt.timedelta(days=get_settings().session_max_days)
    assert refreshed.session_expires_at is not None
    assert refreshed.session_expires_at >= before + max_age


async def test_an_expired_token_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, user: User
) -> None:
    token = await _login(client, user.username)
    row = await _row(session, token)
    row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    await session.flush()
    _assert_refused(await _refresh(client, token))


async def test_issuing_deletes_a_bounded_number_of_the_users_expired_rows(
    client: httpx.AsyncClient, session: AsyncSession, user: User, user_factory
) -> None:  # type: ignore[no-untyped-def]
    # given: more rows expired over a lifetime ago than one issue deletes, of this user
    # and of another
    other = await user_factory()
    lifetime = dt.timedelta(days=get_settings().refresh_token_expire_days)
    past = dt.datetime.now(dt.UTC) - lifetime - dt.timedelta(days=1)
    for owner in (user, other):
        session.add_all(
            RefreshToken(
                user_id=owner.id,
                family_id=uuid.uuid4(),
                token_hash=uuid.uuid4().hex * 2,
                token_version=0,
                expires_at=past,
            )
            for _ in range(EXPIRED_ROWS_DELETED_PER_ISSUE + 5)
        )
    await session.flush()
    # when
    await _login(client, user.username)

    # then
    async def expired(owner: User) -> int:
        query = select(func.count()).where(
            RefreshToken.user_id == owner.id, RefreshToken.expires_at < func.now() - lifetime
        )
        return int(await session.scalar(query) or 0)

    assert await expired(user) == 5
    assert await expired(other) == EXPIRED_ROWS_DELETED_PER_ISSUE + 5


async def test_an_expired_spent_token_outlives_the_clean_up_for_a_lifetime(
    client: httpx.AsyncClient, session: AsyncSession, user: User
) -> None:
    # given: a session whose first token was spent long ago and has expired since
    first = await _login(client, user.username)
    current = (await _refresh(client, first)).json()["refresh_token"]
    expired = await _row(session, first)
    expired.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    await session.flush()

    # when: the user logs in again (a clean-up runs), and the old token comes back
    await _login(client, user.username)
    replay = await _refresh(client, first)

    # then: its row was kept (for a lifetime past its expiry), so the replay is
    # recognised and revokes the family
    _assert_refused(replay)
    assert (await _row(session, first)).revoked_at is not None
    _assert_refused(await _refresh(client, current))


async def test_a_bumped_token_version_or_an_inactive_user_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, user: User, user_factory
) -> None:  # type: ignore[no-untyped-def]
    # Written directly (no revocation), so the refresh's own checks must refuse them.
    bumped = await _login(client, user.username)
    await session.execute(
        update(User).where(User.id == user.id).values(token_version=User.token_version + 1)
    )
    _assert_refused(await _refresh(client, bumped))

    other = await user_factory()
    inactive = await _login(client, other.username)
    await session.execute(update(User).where(User.id == other.id).values(is_active=False))
    _assert_refused(await _refresh(client, inactive))


async def test_a_password_change_ends_every_session(client: httpx.AsyncClient, user: User) -> None:
    sessions = [await _login(client, user.username) for _ in range(2)]
    access = (
        await client.post(TOKEN, data={"username": user.username, "password": DEFAULT_PASSWORD})
    ).json()
    change = {"current_password": DEFAULT_PASSWORD, "new_password": "a brand new password"}
    response = await client.post(
        "/api/users/me/password",
        json=change,
        headers={"Authorization": f"Bearer {access['access_token']}"},
    )
    assert response.status_code == 204
    for token in [*sessions, access["refresh_token"]]:
        _assert_refused(await _refresh(client, token))


async def test_deactivation_by_a_superuser_ends_every_session(
    client: httpx.AsyncClient, session: AsyncSession, user: User, superuser_headers: dict[str, str]
) -> None:
    token = await _login(client, user.username)
    response = await client.patch(
        f"/api/users/{user.id}", json={"is_active": False}, headers=superuser_headers
    )
    assert response.status_code == 200
    assert (await _row(session, token)).revoked_at is not None
    # reactivated, the old session stays ended
    await client.patch(f"/api/users/{user.id}", json={"is_active": True}, headers=superuser_headers)
    _assert_refused(await _refresh(client, token))


async def test_a_password_set_by_a_superuser_ends_every_session(
    client: httpx.AsyncClient, user: User, superuser_headers: dict[str, str]
) -> None:
    token = await _login(client, user.username)
    response = await client.patch(
        f"/api/users/{user.id}", json={"password": "set by an admin"}, headers=superuser_headers
    )
    assert response.status_code == 200
    _assert_refused(await _refresh(client, token))


async def test_deletion_ends_every_session(
    client: httpx.AsyncClient, session: AsyncSession, user: User, superuser_headers: dict[str, str]
) -> None:
    token = await _login(client, user.username)
    response = await client.delete(f"/api/users/{user.id}", headers=superuser_headers)
    assert response.status_code == 204
    count = await session.scalar(select(func.count()).where(RefreshToken.user_id == user.id))
    assert count == 0  # ON DELETE CASCADE
    _assert_refused(await _refresh(client, token))


async def test_logout_ends_the_session_and_is_idempotent(
    client: httpx.AsyncClient, session: AsyncSession, user: User
) -> None:
    # given: a session refreshed once (two tokens in its family) and another session
    first_access, first = await _login_for_both(client, user.username)
    refreshed = (await _refresh(client, first)).json()
    current, current_access = refreshed["refresh_token"], refreshed["access_token"]
    other_access, other = await _login_for_both(client, user.username)
    # when: logging out with the session's spent token
    response = await client.post(LOGOUT, json={"refresh_token": first})
    # then: the session's refresh and access tokens, old and new, are all refused
    assert response.status_code == 204 and response.content == b""
    _assert_refused(await _refresh(client, current))
    for access in (first_access, current_access):
        _assert_access_refused(await _me(client, access))
    assert (await _row(session, other)).revoked_at is None  # other sessions live on
    assert (await _me(client, other_access)).status_code == 200
    for token in (first, current, "never-issued"):  # revoked again, or unknown
        assert (await client.post(LOGOUT, json={"refresh_token": token})).status_code == 204


# --- committing for real: the replay's revocation outlives its failed request ----------


async def _family_revoked(engine: AsyncEngine, token: str) -> bool:
    digest = hashlib.sha256(token.encode()).hexdigest()
    family = select(RefreshToken.family_id).where(RefreshToken.token_hash == digest)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(RefreshToken.revoked_at).where(
                    RefreshToken.family_id == family.scalar_subquery()
                )
            )
        ).all()
    assert rows
    return all(row.revoked_at is not None for row in rows)


async def test_a_replayed_token_revokes_its_family(
    committing: tuple[httpx.AsyncClient, Credentials], engine: AsyncEngine
) -> None:
    client, account = committing
    # given: the legitimate holder refreshed; an attacker kept the old token
    first = await _login(client, account.username, account.password)
    refreshed = (await _refresh(client, first)).json()
    current, current_access = refreshed["refresh_token"], refreshed["access_token"]
    assert (await _me(client, current_access)).status_code == 200
    # when: the spent token comes back
    _assert_refused(await _refresh(client, first))
    # then: the holder's current tokens died with the family, the access token too
    assert await _family_revoked(engine, first)
    _assert_refused(await _refresh(client, current))
    _assert_access_refused(await _me(client, current_access))


async def test_two_concurrent_refreshes_of_one_token_give_one_success(
    committing: tuple[httpx.AsyncClient, Credentials], engine: AsyncEngine
) -> None:
    """Each request on its own connection and transaction, committing for real: the
    UPDATE ... WHERE spent_at IS NULL of one waits for the other's row lock, then finds
    the token spent, which is a replay: the family is revoked."""
    client, account = committing
    token = await _login(client, account.username, account.password)
    responses = await asyncio.gather(_refresh(client, token), _refresh(client, token))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 401], [r.text for r in responses]
    winner = next(r for r in responses if r.status_code == 200).json()["refresh_token"]
    assert await _family_revoked(engine, token)
    _assert_refused(await _refresh(client, winner))


async def test_a_taken_email_in_a_password_change_by_a_superuser_is_still_a_409(
    client: httpx.AsyncClient, user: User, superuser: User, superuser_headers: dict[str, str]
) -> None:
    # The sessions are revoked after the user is saved, so the save reports the conflict.
    change = {"email": superuser.email, "password": "set by an admin"}
    response = await client.patch(f"/api/users/{user.id}", json=change, headers=superuser_headers)
    assert response.status_code == 409, response.text
