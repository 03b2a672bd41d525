"""Concurrent requests for one user: the interleavings that used to lose a write.

Each test holds the user's row (`FOR UPDATE`, from a connection of its own) while it
starts the two requests, one after the other, and waits until each is blocked on a lock;
then it lets go (tests/reliability/row_locks.py). The requests run in the order they
queued, at the exact point each reached, so the interleaving is the same on every run
(lambda_app.identity.user_lock says what each one used to break). The app commits for
real (`committing_client`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
import httpx
import pytest
from pwdlib.hashers.argon2 import Argon2Hasher

from lambda_app.identity.signing_key import current_signing_key
from lambda_app.identity.tokens import create_access_token
from tests.fixtures.accounts import Credentials, login, register, session_id
from tests.fixtures.mailbox import Mailbox
from tests.reliability.databases import asyncpg_dsn
from tests.reliability.row_locks import rows_held, user_row_held


async def _superuser_headers(client: httpx.AsyncClient, database_url: str) -> dict[str, str]:
    admin = await register(client, prefix="admin")
    conn = await asyncpg.connect(**asyncpg_dsn(database_url))
    try:
        await conn.execute(
            "UPDATE users SET is_superuser = true WHERE username = $1", admin.username
        )
    finally:
        await conn.close()
    return await login(client, admin.username, admin.password)


async def _user_id(database_url: str, username: str) -> int:
    conn = await asyncpg.connect(**asyncpg_dsn(database_url))
    try:
        return int(await conn.fetchval("SELECT id FROM users WHERE username = $1", username))
    finally:
        await conn.close()


async def _refresh_token(client: httpx.AsyncClient, user: Credentials) -> str:
    response = await client.post("/api/auth/token", data=user.login_form())
    assert response.status_code == 200, response.text
    return str(response.json()["refresh_token"])


async def test_a_logout_ends_the_token_a_concurrent_refresh_issued(
    committing_client: httpx.AsyncClient, committing_database: str
) -> None:
    client = committing_client
    user = await register(client)
    token = await _refresh_token(client, user)

    # when: a refresh and then a logout of the same session, both in flight at once
    async with user_row_held(committing_database, user.username) as row:
        refreshing = await row.start_blocked(
            client.post("/api/auth/refresh", json={"refresh_token": token})
        )
        logging_out = await row.start_blocked(
            client.post("/api/auth/logout", json={"refresh_token": token})
        )
    refreshed, logged_out = await asyncio.gather(refreshing, logging_out)

    # then: the logout stands for the whole session, the refresh's new token included
    assert logged_out.status_code == 204
    assert refreshed.status_code == 200, refreshed.text  # it queued first
    again = await client.post(
        "/api/auth/refresh", json={"refresh_token": refreshed.json()["refresh_token"]}
    )
    assert again.status_code == 401, again.text
    access = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    assert (await client.get("/api/users/me", headers=access)).status_code == 401


async def test_a_login_rehashing_the_old_password_never_undoes_a_password_change(
    committing_client: httpx.AsyncClient, committing_database: str
) -> None:
    client = committing_client
    user = await register(client)
    headers = await login(client, user.username, user.password)
    # given: a stored hash with outdated parameters, so that a login rewrites it
    outdated = Argon2Hasher(memory_cost=8192, time_cost=1, parallelism=1).hash(user.password)
    conn = await asyncpg.connect(**asyncpg_dsn(committing_database))
    try:
        await conn.execute(
            "UPDATE users SET hashed_password = $1 WHERE username = $2", outdated, user.username
        )
    finally:
        await conn.close()
    new_password = "a brand new password 123"

    # when: the password change queues first, a login with the old password after it
    async with user_row_held(committing_database, user.username) as row:
        changing = await row.start_blocked(
            client.post(
                "/api/users/me/password",
                json={"current_password": user.password, "new_password": new_password},
                headers=headers,
            )
        )
        logging_in = await row.start_blocked(client.post("/api/auth/token", data=user.login_form()))
    changed, logged_in = await asyncio.gather(changing, logging_in)

    # then: the change stands; the login checked a password that was no longer the one
    assert changed.status_code == 204, changed.text
    assert logged_in.status_code == 401, logged_in.text
    old = await client.post("/api/auth/token", data=user.login_form())
    assert old.status_code == 401, old.text
    new = await client.post(
        "/api/auth/token", data={"username": user.username, "password": new_password}
    )
    assert new.status_code == 200, new.text


async def _queued_behind_a_deletion(
    client: httpx.AsyncClient,
    database_url: str,
    user: Credentials,
    request: Coroutine[Any, Any, httpx.Response],
) -> httpx.Response:
    """`request`'s answer, the request queued right behind an admin's DELETE of `user`."""
    admin = await _superuser_headers(client, database_url)
    user_id = await _user_id(database_url, user.username)
    async with user_row_held(database_url, user.username) as row:
        deleting = await row.start_blocked(client.delete(f"/api/users/{user_id}", headers=admin))
        racing = await row.start_blocked(request)
    deleted, answered = await asyncio.gather(deleting, racing)
    assert deleted.status_code == 204, deleted.text
    return answered


async def test_deleting_a_user_while_it_refreshes_neither_deadlocks_nor_fails(
    committing_client: httpx.AsyncClient, committing_database: str
) -> None:
    client = committing_client
    user = await register(client)
    token = await _refresh_token(client, user)
    refresh = client.post("/api/auth/refresh", json={"refresh_token": token})

    refreshed = await _queued_behind_a_deletion(client, committing_database, user, refresh)

    assert refreshed.status_code == 401, refreshed.text
    assert refreshed.json()["error"]["code"] == "invalid_refresh_token"


async def test_a_login_of_a_user_deleted_meanwhile_is_refused(
    committing_client: httpx.AsyncClient, committing_database: str
) -> None:
    client = committing_client
    user = await register(client)
    log_in = client.post("/api/auth/token", data=user.login_form())

    logged_in = await _queued_behind_a_deletion(client, committing_database, user, log_in)

    assert logged_in.status_code == 401, logged_in.text
    assert logged_in.json()["error"]["code"] == "invalid_credentials"


async def test_a_verification_link_asked_for_by_a_user_deleted_meanwhile_is_a_401(
    committing_client: httpx.AsyncClient, committing_database: str
) -> None:
    client = committing_client
    user = await register(client)
    headers = await login(client, user.username, user.password)
    resend = client.post("/api/users/me/verify-email", headers=headers)

    resent = await _queued_behind_a_deletion(client, committing_database, user, resend)

    assert resent.status_code == 401, resent.text


async def test_a_password_recovery_for_a_user_deleted_meanwhile_is_the_usual_202(
    committing_client: httpx.AsyncClient, committing_database: str
) -> None:
    client = committing_client
    user = await register(client)
    email = user.registration()["email"]
    recover = client.post("/api/auth/password-recovery", json={"email": email})

    recovered = await _queued_behind_a_deletion(client, committing_database, user, recover)

    # then: the answer any address gets, and no link for the account that is gone
    assert recovered.status_code == 202, recovered.text
    assert Mailbox().to(email, "Reset your password") == []


async def test_an_admin_password_change_racing_the_users_own_revokes_what_both_revoke(
    committing_client: httpx.AsyncClient, committing_database: str
) -> None:
    client = committing_client
    user = await register(client)
    headers = await login(client, user.username, user.password)
    admin = await _superuser_headers(client, committing_database)
    user_id = await _user_id(committing_database, user.username)
    admins_password = "the admin's choice 123"

    # when: the user's own change queues first, a superuser's after it
    async with user_row_held(committing_database, user.username) as row:
        own = await row.start_blocked(
            client.post(
                "/api/users/me/password",
                json={"current_password": user.password, "new_password": "the user's own 123"},
                headers=headers,
            )
        )
        by_admin = await row.start_blocked(
            client.patch(f"/api/users/{user_id}", json={"password": admins_password}, headers=admin)
        )
    changed, set_by_admin = await asyncio.gather(own, by_admin)
    assert changed.status_code == 204, changed.text
    assert set_by_admin.status_code == 200, set_by_admin.text

    # then: the admin's password logs in; an access token issued between the two changes
    # (after the user's: a new user's token_version is 0) is dead, even in a live session
    new = await login(client, user.username, admins_password)
    assert (await client.get("/api/users/me", headers=new)).status_code == 200
    issued_between = create_access_token(
        user_id=user_id,
        token_version=1,
        session_id=session_id(new),
        key=current_signing_key(),
        lifetime=dt.timedelta(minutes=5),
    ).token
    me = await client.get("/api/users/me", headers={"Authorization": f"Bearer {issued_between}"})
    assert me.status_code == 401, me.text


async def test_an_email_change_racing_a_password_recovery_does_not_deadlock(
    committing_client: httpx.AsyncClient, committing_database: str
) -> None:
    client = committing_client
    user = await register(client)
    old_email, new_email = user.registration()["email"], f"moved-{user.username}@example.com"
    await login(client, user.username, user.password)  # a session: a refresh token row
    admin = await _superuser_headers(client, committing_database)
    user_id = await _user_id(committing_database, user.username)
    # given: the address it moves to asked for a link two hours ago (a finished window)
    conn = await asyncpg.connect(**asyncpg_dsn(committing_database))
    try:
        await conn.execute(
            "INSERT INTO email_throttle VALUES ('verify_email', $1, 1, now() - interval '2 hours')",
            new_email,
        )
    finally:
        await conn.close()

    # when: a superuser's change of email and password holds the user's row while it ends
    # the user's sessions (held up there), and a recovery for the old address comes
    session_row = "SELECT 1 FROM refresh_tokens WHERE user_id = $1 FOR UPDATE"
    async with rows_held(committing_database, session_row, user_id) as row:
        changing = await row.start_blocked(
            client.patch(
                f"/api/users/{user_id}",
                json={"email": new_email, "password": "a new password 123"},
                headers=admin,
            )
        )
        recovering = await row.start_blocked(
            client.post("/api/auth/password-recovery", json={"email": old_email})
        )
    changed, recovered = await asyncio.gather(changing, recovering)

    # then: both answer as they would one after the other
    assert changed.status_code == 200, changed.text
    assert recovered.status_code == 202, recovered.text


async def _deleted_mid_request(
    client: httpx.AsyncClient,
    database_url: str,
    request: Callable[[Credentials, dict[str, str]], Coroutine[Any, Any, httpx.Response]],
) -> httpx.Response:
    """`request(user, headers)`'s answer, queued behind a DELETE of its user."""
    user = await register(client)
    headers = await login(client, user.username, user.password)
    return await _queued_behind_a_deletion(client, database_url, user, request(user, headers))


async def test_a_user_deleted_meanwhile_is_a_401_on_its_own_routes(
    committing_client: httpx.AsyncClient, committing_database: str
) -> None:
    client = committing_client
    requests: dict[str, Callable[[Credentials, dict[str, str]], Any]] = {
        "patch a name": lambda user, headers: client.patch(
            "/api/users/me", json={"first_name": "Ada"}, headers=headers
        ),
        "change the password": lambda user, headers: client.post(
            "/api/users/me/password",
            json={"current_password": user.password, "new_password": "another one 123"},
            headers=headers,
        ),
        "patch nothing": lambda user, headers: client.patch(
            "/api/users/me", json={}, headers=headers
        ),
    }
    for name, request in requests.items():
        answered = await _deleted_mid_request(client, committing_database, request)
        assert answered.status_code == 401, (name, answered.text)
        assert answered.json()["error"]["code"] == "not_authenticated", name


async def test_a_user_deleted_meanwhile_is_a_404_to_another_superuser(
    committing_client: httpx.AsyncClient, committing_database: str
) -> None:
    client = committing_client
    admin = await _superuser_headers(client, committing_database)

    requests: dict[str, Callable[[int], Any]] = {
        "delete it again": lambda user_id: client.delete(f"/api/users/{user_id}", headers=admin),
        "patch nothing": lambda user_id: client.patch(
            f"/api/users/{user_id}", json={}, headers=admin
        ),
    }
    for name, request in requests.items():
        user = await register(client)
        user_id = await _user_id(committing_database, user.username)
        answered = await _queued_behind_a_deletion(
            client, committing_database, user, request(user_id)
        )
        assert answered.status_code == 404, (name, answered.text)
        assert answered.json()["error"]["code"] == "user_not_found", name


async def _the_only_two_superusers(
    client: httpx.AsyncClient, database_url: str
) -> list[tuple[int, dict[str, str]]]:
    """Two new superusers (id, bearer headers), the only ones: the others the module's
    database holds stop being superusers."""
    conn = await asyncpg.connect(**asyncpg_dsn(database_url))
    try:
        await conn.execute("UPDATE users SET is_superuser = false WHERE is_superuser")
    finally:
        await conn.close()
    superusers = []
    for _ in range(2):
        headers = await _superuser_headers(client, database_url)
        me = await client.get("/api/users/me", headers=headers)
        superusers.append((int(me.json()["id"]), headers))
    return superusers


REMOVALS: dict[str, Callable[[httpx.AsyncClient, int, dict[str, str]], Any]] = {
    "demote": lambda client, user_id, headers: client.patch(
        f"/api/users/{user_id}", json={"is_superuser": False}, headers=headers
    ),
    "deactivate": lambda client, user_id, headers: client.patch(
        f"/api/users/{user_id}", json={"is_active": False}, headers=headers
    ),
    "delete": lambda client, user_id, headers: client.delete(
        f"/api/users/{user_id}", headers=headers
    ),
}


@pytest.mark.parametrize("removal", REMOVALS)
async def test_two_superusers_removing_each_other_at_once_leave_one(
    committing_client: httpx.AsyncClient, committing_database: str, removal: str
) -> None:
    client = committing_client
    (first, first_headers), (second, second_headers) = await _the_only_two_superusers(
        client, committing_database
    )
    remove = REMOVALS[removal]

    # when: each removes the other, both requests in flight at once (each already past
    # its own superuser check)
    both = "SELECT 1 FROM users WHERE id = ANY($1::int[]) FOR UPDATE"
    async with rows_held(committing_database, both, [first, second]) as rows:
        removing_second = await rows.start_blocked(remove(client, second, first_headers))
        removing_first = await rows.start_blocked(remove(client, first, second_headers))
    removed, refused = await asyncio.gather(removing_second, removing_first)

    # then: the first queued goes through; the other would leave none, and is refused
    # (neither deadlocks: both lock the superusers' rows in one order)
    assert removed.status_code in (200, 204), removed.text
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "last_superuser"
    conn = await asyncpg.connect(**asyncpg_dsn(committing_database))
    try:
        left = await conn.fetch("SELECT id FROM users WHERE is_superuser AND is_active")
    finally:
        await conn.close()
    assert [row["id"] for row in left] == [first]


async def _recovery_asked_during(
    client: httpx.AsyncClient, database_url: str, change: dict[str, object]
) -> str:
    """A user's address, a password recovery for which came while a superuser's `PATCH`
    of `change`, holding the user's row, ended its sessions (held up there, before it
    deletes the links already mailed). Both answered; the recovery had to block."""
    user = await register(client)
    await login(client, user.username, user.password)  # a session: a refresh token row
    admin = await _superuser_headers(client, database_url)
    user_id = await _user_id(database_url, user.username)
    email = user.registration()["email"]
    session_row = "SELECT 1 FROM refresh_tokens WHERE user_id = $1 FOR UPDATE"
    async with rows_held(database_url, session_row, user_id) as row:
        changing = await row.start_blocked(
            client.patch(f"/api/users/{user_id}", json=change, headers=admin)
        )
        # not blocked, its link would be stored before the change deletes the mailed ones
        recovering = await row.start_blocked(
            client.post("/api/auth/password-recovery", json={"email": email})
        )
    changed, recovered = await asyncio.gather(changing, recovering)
    assert changed.status_code == 200, changed.text
    assert recovered.status_code == 202, recovered.text
    return email


async def test_a_recovery_asked_during_a_deactivation_mails_no_link(
    committing_client: httpx.AsyncClient, committing_database: str
) -> None:
    email = await _recovery_asked_during(
        committing_client, committing_database, {"is_active": False}
    )

    # then: it waited for the deactivation and saw it: no link, none to work after a
    # reactivation
    assert Mailbox().to(email, "Reset your password") == []
    conn = await asyncpg.connect(**asyncpg_dsn(committing_database))
    try:
        links = await conn.fetchval("SELECT count(*) FROM account_tokens WHERE email = $1", email)
    finally:
        await conn.close()
    assert links == 0  # the verification link was deleted by the deactivation


async def test_a_recovery_asked_during_a_password_change_mails_a_link_newer_than_it(
    committing_client: httpx.AsyncClient, committing_database: str
) -> None:
    new_password = {"password": "the admin's choice 123"}
    email = await _recovery_asked_during(committing_client, committing_database, new_password)

    # then: its link was issued after the new password, as if asked a moment later
    link = Mailbox().last_to(email, "Reset your password")
    body = {"token": link.token, "new_password": "mine again 123"}
    reset = await committing_client.post("/api/auth/reset-password", json=body)
    assert reset.status_code == 204, reset.text
