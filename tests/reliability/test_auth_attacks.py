"""Auth attacks: forged, stale and misused tokens, timing, enumeration, brute force."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.identity import password_attempts
from lambda_app.identity.signing_key import current_signing_key
from lambda_app.identity.tokens import create_access_token
from lambda_app.models import User
from tests.fixtures.accounts import DEFAULT_PASSWORD, login, register, session_id
from tests.fixtures.factories import UserFactory
from tests.reliability.databases import asyncpg_dsn
from tests.reliability.row_locks import rows_held

UNAUTHENTICATED = {
    "error": {
        "code": "not_authenticated",
        "message": "Missing, invalid or expired credentials",
        "details": None,
    }
}
INVALID_CREDENTIALS = {
    "error": {
        "code": "invalid_credentials",
        "message": "Incorrect username or password",
        "details": None,
    }
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _hs256_with_key(key: bytes, claims: dict[str, Any]) -> str:
    """HS256 by hand: PyJWT itself refuses to use a PEM public key as an HMAC secret."""
    signing_input = _unsigned({"alg": "HS256", "typ": "JWT", "kid": _kid()}, claims)
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


@dataclass(frozen=True)
class _Caller:
    """A user with a session the API started: what a genuine token names."""

    id: int
    token_version: int
    session_id: uuid.UUID


@pytest.fixture
async def caller(client: httpx.AsyncClient, user: User) -> _Caller:
    return _Caller(user.id, user.token_version, session_id(await login(client, user.username)))


def _claims(user: _Caller, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user.id),
        "ver": user.token_version,
        "sid": str(user.session_id),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _kid() -> str:
    return current_signing_key().kid


def _signed(
    claims: dict[str, Any], *, headers: dict[str, Any] | None = None, algorithm: str = "HS256"
) -> str:
    """Signed with the server's current key, whose kid the header names unless `headers`."""
    headers = {"kid": _kid()} if headers is None else headers
    return jwt.encode(claims, current_signing_key().key, algorithm=algorithm, headers=headers)


def _valid(user: _Caller, **overrides: Any) -> str:
    return _signed(_claims(user, **overrides))


async def _me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _forged_tokens(user: _Caller) -> dict[str, str]:
    """Every way of forging or bending a token we know of, for the same (real) user."""
    now = int(time.time())
    key = _rsa_key()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    valid = _valid(user)
    header, payload, signature = valid.split(".")
    other_user_payload = _b64(json.dumps(_claims(user, sub=str(user.id + 1))).encode())
    issued_then_expired = create_access_token(
        user_id=user.id,
        token_version=user.token_version,
        session_id=user.session_id,
        key=current_signing_key(),
        lifetime=dt.timedelta(seconds=-1),
    ).token
    return {
        "alg none": _unsigned({"alg": "none", "typ": "JWT"}, _claims(user)) + ".",
        "alg None, signature kept": _unsigned({"alg": "None"}, _claims(user)) + f".{signature}",
        "RS256 signed with an attacker key": jwt.encode(
            _claims(user), key, algorithm="RS256", headers={"kid": _kid()}
        ),
        "HS256 keyed with an RSA public key": _hs256_with_key(public_pem, _claims(user)),
        "HS512 with the right secret": _signed(_claims(user), algorithm="HS512"),
        # The right key, but the header does not say so: the key is chosen by kid alone.
        "no kid": _signed(_claims(user), headers={}),
        "unknown kid": _signed(_claims(user), headers={"kid": "20990101-deadbeef"}),
        "empty kid": _signed(_claims(user), headers={"kid": ""}),
        "expired": _valid(user, iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        "issued by the app, then expired": issued_then_expired,
        "not yet valid": _valid(user, nbf=now + 3600, exp=now + 7200),
        "tampered payload": f"{header}.{other_user_payload}.{signature}",
        "tampered signature": f"{header}.{payload}.{signature[:-4]}AAAA",
        "signed with another secret": jwt.encode(
            _claims(user),
            "another-secret-that-is-long-enough-0123456789",
            algorithm="HS256",
            headers={"kid": _kid()},
        ),
        "no exp": _valid(user, exp=None),
        "no ver": _valid(user, ver=None),
        "no sub": _valid(user, sub=None),
        "ver as a boolean": _valid(user, ver=False),  # False == 0 in Python
        "stale ver": _valid(user, ver=user.token_version + 1),
        "sub not a number": _valid(user, sub="admin"),
        "sub zero": _valid(user, sub="0"),
        "no sid": _valid(user, sid=None),
        "sid not a UUID": _valid(user, sid="1"),
        "sid as a number": _valid(user, sid=1),
        "sid of no session": _valid(user, sid=str(uuid.uuid4())),
        "empty": "",
        "garbage": "not.a.token",
        "not a JWT at all": "not-a-jwt",
    }


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_forged_and_bent_tokens_are_all_rejected_with_401(
    client: httpx.AsyncClient, caller: _Caller
) -> None:
    assert caller.token_version == 0
    # the genuine article works, so the 401s below are about the tokens
    assert (await _me(client, _valid(caller))).status_code == 200
    for name, token in _forged_tokens(caller).items():
        response = await _me(client, token)
        assert response.status_code == 401, name
        assert response.json() == UNAUTHENTICATED, name
        # RFC 6750 3.1: a token that came and is refused says so; no token at all does not
        challenge = "Bearer" if token == "" else 'Bearer error="invalid_token"'
        assert response.headers["www-authenticate"] == challenge, name


async def test_a_token_naming_another_users_session_is_401(
    client: httpx.AsyncClient, caller: _Caller, superuser: User
) -> None:
    theirs = session_id(await login(client, superuser.username))
    response = await _me(client, _valid(caller, sid=str(theirs)))
    assert response.status_code == 401 and response.json() == UNAUTHENTICATED
    assert (await _me(client, _valid(caller))).status_code == 200


async def test_missing_or_non_bearer_authorization_is_401(
    client: httpx.AsyncClient, caller: _Caller
) -> None:
    token = _valid(caller)
    for headers in (
        {},
        {"Authorization": token},
        {"Authorization": f"Basic {token}"},
        {"Authorization": "Basic dXNlcjpwYXNz"},  # user:pass
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer  "},
    ):
        response = await client.get("/api/users/me", headers=headers)
        assert response.status_code == 401, headers
        assert response.json() == UNAUTHENTICATED
        assert response.headers["www-authenticate"] == "Bearer", headers


@pytest.mark.parametrize("change", ["deleted", "deactivated"])
async def test_token_of_a_deleted_or_deactivated_user_is_401(
    client: httpx.AsyncClient, session: AsyncSession, user_factory: UserFactory, change: str
) -> None:
    user = await user_factory()
    headers = await login(client, user.username)
    assert (await client.get("/api/users/me", headers=headers)).status_code == 200
    if change == "deleted":
        await session.delete(user)
    else:
        user.is_active = False
    await session.flush()
    for path in ("/api/users/me", f"/api/users/{user.id}"):
        response = await client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.json() == UNAUTHENTICATED
        # RFC 6750 3.1: the token came and is refused, so the client knows to log in again
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_a_password_change_revokes_tokens_issued_before_it(
    client: httpx.AsyncClient, user: User
) -> None:
    # given: two tokens issued before the change
    old_a = await login(client, user.username)
    old_b = await login(client, user.username)

    # when
    response = await client.post(
        "/api/users/me/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": "a brand new password"},
        headers=old_a,
    )
    assert response.status_code == 204, response.text

    # then: both old tokens are dead, while a token issued after the change works
    # (that the password itself changed: tests/users/test_me.py)
    for headers in (old_a, old_b):
        response = await client.get("/api/users/me", headers=headers)
        assert response.status_code == 401
        assert response.json() == UNAUTHENTICATED
    fresh = await login(client, user.username, "a brand new password")
    assert (await client.get("/api/users/me", headers=fresh)).status_code == 200


async def test_an_admin_password_reset_also_revokes_older_tokens(
    client: httpx.AsyncClient, user: User, superuser_headers: dict[str, str]
) -> None:
    old = await login(client, user.username)
    response = await client.patch(
        f"/api/users/{user.id}", json={"password": "reset by an admin"}, headers=superuser_headers
    )
    assert response.status_code == 200, response.text
    assert (await client.get("/api/users/me", headers=old)).status_code == 401


async def test_unknown_user_wrong_password_and_inactive_user_look_the_same(
    client: httpx.AsyncClient, user_factory: UserFactory
) -> None:
    active = await user_factory()
    inactive = await user_factory(is_active=False)
    attempts = {
        "unknown user": {"username": "nobody_here", "password": DEFAULT_PASSWORD},
        "unknown email": {"username": "nobody@example.com", "password": DEFAULT_PASSWORD},
        "wrong password": {"username": active.username, "password": "wrong password!"},
        "inactive user, right password": {
            "username": inactive.username,
            "password": DEFAULT_PASSWORD,
        },
    }
    seen = set()
    for name, form in attempts.items():
        response = await client.post("/api/auth/token", data=form)
        assert response.status_code == 401, name
        assert response.json() == INVALID_CREDENTIALS, name
        seen.add((response.status_code, response.text, response.headers.get("www-authenticate")))
    assert len(seen) == 1


async def test_another_users_id_is_the_404_of_a_missing_one_to_a_non_superuser(
    client: httpx.AsyncClient, user_headers: dict[str, str], user_factory: UserFactory
) -> None:
    # Ids are sequential: were other accounts readable, counting up would harvest every
    # email; and a 403 would still tell which ids exist.
    other = await user_factory()

    another = await client.get(f"/api/users/{other.id}", headers=user_headers)
    missing = await client.get(f"/api/users/{2**31 - 1}", headers=user_headers)  # never taken

    assert another.status_code == missing.status_code == 404
    assert another.json() == missing.json()
    assert another.json()["error"]["code"] == "user_not_found"


@pytest.fixture
def argon2_computations(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | None]]:
    """Every Argon2 computation during the test, in order: ("verify", the hash checked
    against) or ("hash", None) for any other.

    `argon2.low_level.lib` (the C library) is the one way in: pwdlib's Argon2Hasher goes
    through argon2's PasswordHasher to its low-level functions, and each of those calls
    `argon2_hash`, `argon2_verify` or `argon2_ctx` there. The wrapper records the call,
    then makes the real one: each computation still does its full work.
    """
    import argon2.low_level

    real_lib, ffi = argon2.low_level.lib, argon2.low_level.ffi
    seen: list[tuple[str, str | None]] = []

    class CountingLib:
        def __getattr__(self, name: str) -> Any:
            real = getattr(real_lib, name)
            if name == "argon2_verify":

                def verify(encoded: Any, *args: Any) -> Any:
                    seen.append(("verify", ffi.string(encoded).decode()))
                    return real(encoded, *args)

                return verify
            if name in ("argon2_hash", "argon2_ctx"):

                def compute(*args: Any) -> Any:
                    seen.append(("hash", None))
                    return real(*args)

                return compute
            return real

    monkeypatch.setattr(argon2.low_level, "lib", CountingLib())
    return seen


async def test_every_failed_login_costs_what_a_valid_one_does(
    client: httpx.AsyncClient,
    user_factory: UserFactory,
    argon2_computations: list[tuple[str, str | None]],
) -> None:
    """An answer's timing tells nothing: unknown users are checked against a dummy hash.
    Counted at the hashing library, not timed: each attempt is exactly one Argon2
    computation, a verification of a hash made at the configured cost, whatever its
    outcome; two for a wrong password not in NFKC, known account or not (its form as
    typed is tried too, for hashes made before passwords were normalized). Also as the
    first request of a fresh (or just restored) container, where nothing is cached yet:
    building the dummy hashes nothing."""
    import argon2

    from lambda_app.core.settings import get_settings
    from lambda_app.identity import passwords

    settings = get_settings()
    configured_cost = (
        argon2.Type.ID,
        settings.password_hash_memory_kib,
        settings.password_hash_time_cost,
        settings.password_hash_parallelism,
    )
    active = await user_factory()
    inactive = await user_factory(is_active=False)
    stored = {active.hashed_password, inactive.hashed_password}
    real_hash_parameters = argon2.extract_parameters(active.hashed_password)
    not_nfkc = "wrong pa\u0308sswort"  # a + U+0308, which NFKC composes into ä
    # name: (login name, password, status, the hash it is checked against (None: a
    # dummy), how many times)
    attempts: dict[str, tuple[str, str, int, str | None, int]] = {
        "unknown user": ("nobody_here", DEFAULT_PASSWORD, 401, None, 1),
        "wrong password": (active.username, "wrong password!", 401, active.hashed_password, 1),
        "valid login": (active.username, DEFAULT_PASSWORD, 200, active.hashed_password, 1),
        "inactive account, right password": (
            inactive.username,
            DEFAULT_PASSWORD,
            401,
            inactive.hashed_password,
            1,
        ),
        "unknown email": ("nobody@example.com", DEFAULT_PASSWORD, 401, None, 1),
        "no email at all": ("nobody@@example.com", DEFAULT_PASSWORD, 401, None, 1),
        "NUL in the login name": (f"{active.username}\x00", DEFAULT_PASSWORD, 401, None, 1),
        "wrong password not in NFKC": (active.username, not_nfkc, 401, active.hashed_password, 2),
        "unknown user, a password not in NFKC": ("nobody_here", not_nfkc, 401, None, 2),
    }
    for container in ("fresh container", "warm container"):
        for name, (login_name, password, status, against, times) in attempts.items():
            if container == "fresh container":
                passwords.clear_cache()
            argon2_computations.clear()
            response = await client.post(
                "/api/auth/token", data={"username": login_name, "password": password}
            )
            case = (container, name)
            assert response.status_code == status, (case, response.text)
            assert [kind for kind, _ in argon2_computations] == ["verify"] * times, (
                case,
                argon2_computations,
            )
            for _, checked in argon2_computations:
                assert checked is not None
                cost = argon2.extract_parameters(checked)
                assert (cost.type, cost.memory_cost, cost.time_cost, cost.parallelism) == (
                    configured_cost
                ), case
                assert cost == real_hash_parameters, case  # salt and digest lengths too
                if against is None:
                    assert checked not in stored, case  # the dummy, not some user's hash
                else:
                    assert checked == against, case


async def _token_status(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/api/auth/token", data={"username": username, "password": password})


@asynccontextmanager
async def _owner(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own, to read or arrange what the app stored."""
    conn = await asyncpg.connect(**asyncpg_dsn(database_url))
    try:
        yield conn
    finally:
        await conn.close()


# The throttle counts each failure in a transaction of its own, so these tests run
# against an app that commits for real (the rolled-back `client` would undo the count).


async def test_failed_logins_are_rate_limited_per_login_name(
    committing_client: httpx.AsyncClient,
) -> None:
    from lambda_app.core.settings import get_settings

    client = committing_client
    victim, bystander = await register(client), await register(client)
    limit = get_settings().login_max_failures
    window = get_settings().login_failure_window_seconds
    assert limit == 10

    # given: `limit` failed attempts on one login name
    for _ in range(limit):
        assert (await _token_status(client, victim.username, "wrong password")).status_code == 401

    # then: the next attempt is refused, even with the right password, in any spelling
    for login_name in (victim.username, f"  {victim.username.upper()} "):
        for password in ("wrong password", victim.password):
            response = await _token_status(client, login_name, password)
            assert response.status_code == 429, (login_name, password)
            assert response.json()["error"]["code"] == "too_many_login_attempts"
            assert 0 < int(response.headers["retry-after"]) <= window + 1

    # then: another login name is not affected
    assert (await _token_status(client, bystander.username, bystander.password)).status_code == 200


async def test_unknown_login_names_are_rate_limited_too(
    committing_client: httpx.AsyncClient,
) -> None:
    for _ in range(10):
        response = await _token_status(committing_client, "ghost_of_a_user", "guess")
        assert response.status_code == 401
    response = await _token_status(committing_client, "ghost_of_a_user", "guess")
    assert response.status_code == 429


async def test_a_lockout_ends_when_its_window_has_passed(
    committing_client: httpx.AsyncClient, committing_database: str
) -> None:
    client = committing_client
    account = await register(client)
    username = account.username
    for _ in range(10):
        assert (await _token_status(client, username, "nope nope")).status_code == 401
    assert (await _token_status(client, username, account.password)).status_code == 429

    # when: the window started longer ago than the window lasts
    conn = await asyncpg.connect(**asyncpg_dsn(committing_database))
    try:
        # (both of its counters: the login name's and the account's)
        user_id = await conn.fetchval("SELECT id FROM users WHERE username = $1", username)
        counters = password_attempts.keys_for(login=username, user_id=user_id)
        await conn.execute(
            "UPDATE login_throttle SET window_started_at = now() - interval '901 seconds' "
            "WHERE login = ANY($1::text[])",
            counters,
        )

        # then: the right password works again, and clears the counters
        assert (await _token_status(client, username, account.password)).status_code == 200
        remaining = await conn.fetchval(
            "SELECT count(*) FROM login_throttle WHERE login = ANY($1::text[])", counters
        )
    finally:
        await conn.close()
    assert remaining == 0


async def test_concurrent_guesses_get_no_more_checks_than_the_limit(
    committing_client: httpx.AsyncClient,
) -> None:
    from lambda_app.core.settings import get_settings

    victim = await register(committing_client)
    limit = get_settings().login_max_failures
    burst = limit + 15

    # when: a burst of wrong guesses, all in flight at once
    responses = await asyncio.gather(
        *(_token_status(committing_client, victim.username, "wrong") for _ in range(burst))
    )

    # then: each guess was counted before its check: only `limit` of them were checked
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {401: limit, 429: burst - limit}, statuses


async def test_an_accounts_username_and_email_share_one_guess_budget(
    committing_client: httpx.AsyncClient,
) -> None:
    client = committing_client
    victim = await register(client)
    email = f"{victim.username}@example.com"
    for attempt in range(10):
        login_name = victim.username if attempt % 2 else email
        assert (await _token_status(client, login_name, "wrong")).status_code == 401

    for login_name in (victim.username, email.upper()):
        response = await _token_status(client, login_name, victim.password)
        assert response.status_code == 429, (login_name, response.text)


@pytest.mark.parametrize("kind", ["username", "email"])
async def test_the_spellings_of_one_login_name_share_its_guess_budget(
    committing_client: httpx.AsyncClient, kind: str
) -> None:
    # given: a name nobody has (no account's budget to share), in two spellings that
    # uniqueness folds into one: `_` and `-` in a username, a domain in Unicode or punycode
    client, name = committing_client, f"Ghost_{uuid.uuid4().hex[:8]}"
    spellings = (
        (name, name.lower().replace("_", "-"))
        if kind == "username"
        else (f"{name}@bücher.example", f"{name.upper()}@xn--bcher-kva.example")
    )

    # when: the limit's worth of guesses, alternating between them
    for attempt in range(10):
        response = await _token_status(client, spellings[attempt % 2], "a guess")
        assert response.status_code == 401, response.text

    # then: both spellings are locked out, as one name
    for spelling in spellings:
        response = await _token_status(client, spelling, "a guess")
        assert response.status_code == 429, (spelling, response.text)


async def test_wrong_current_passwords_count_against_the_account(
    committing_client: httpx.AsyncClient,
) -> None:
    client = committing_client
    victim = await register(client)
    headers = await login(client, victim.username, victim.password)

    def change_password(current: str) -> Any:
        return client.post(
            "/api/users/me/password",
            json={"current_password": current, "new_password": "taken over 12345"},
            headers=headers,
        )

    def change_email(current: str) -> Any:
        return client.patch(
            "/api/users/me",
            json={
                "email": f"taken-over-{victim.username}@example.com",
                "current_password": current,
            },
            headers=headers,
        )

    # given: someone holding the victim's access token guesses the current password, to
    # set a new one or to move the reset links to a mailbox of theirs
    for attempt in range(10):
        response = await (change_email if attempt % 2 else change_password)("a guess")
        assert response.status_code == 400, response.text

    # then: the right one no longer gets a check, on either route, and neither does a login
    for change in (change_password, change_email):
        response = await change(victim.password)
        assert response.status_code == 429, response.text
        assert response.json()["error"]["code"] == "too_many_password_attempts"
        assert int(response.headers["retry-after"]) > 0
    assert (await _token_status(client, victim.username, victim.password)).status_code == 429


async def test_concurrent_right_logins_of_one_account_all_succeed(
    committing_client: httpx.AsyncClient,
) -> None:
    """Checked one at a time, not refused: one account used from many places at once."""
    from lambda_app.core.settings import get_settings

    account = await register(committing_client)
    logins = get_settings().login_max_failures + 6
    responses = await asyncio.gather(
        *(
            _token_status(committing_client, account.username, account.password)
            for _ in range(logins)
        )
    )
    assert Counter(response.status_code for response in responses) == {200: logins}


async def test_a_login_name_spelling_an_accounts_counter_counts_against_that_name_only(
    committing_client: httpx.AsyncClient, committing_database: str
) -> None:
    client = committing_client
    victim = await register(client)
    async with _owner(committing_database) as conn:
        user_id = await conn.fetchval("SELECT id FROM users WHERE username = $1", victim.username)

    # when: someone who knows (or counts up to) the id types it as a login name
    for _ in range(10):
        response = await _token_status(client, f"ACCOUNT:{user_id} ", "a guess")
        assert response.status_code == 401, response.text

    # then: the account's own budget is untouched
    assert (await _token_status(client, victim.username, victim.password)).status_code == 200


async def test_guesses_queued_behind_a_right_login_are_still_counted(
    committing_client: httpx.AsyncClient, committing_database: str
) -> None:
    client = committing_client
    victim = await register(client)
    assert (await _token_status(client, victim.username, "wrong 0")).status_code == 401
    async with _owner(committing_database) as conn:
        user_id = await conn.fetchval("SELECT id FROM users WHERE username = $1", victim.username)
    counters = password_attempts.keys_for(login=victim.username, user_id=user_id)

    # when: three wrong guesses queue behind a right login, which clears the counters
    held = "SELECT 1 FROM login_throttle WHERE login = ANY($1::text[]) FOR UPDATE"
    async with rows_held(committing_database, held, counters) as right_login:
        guesses = [
            await right_login.start_blocked(_token_status(client, victim.username, f"wrong {n}"))
            for n in range(1, 4)
        ]
        await right_login.connection.execute(
            "DELETE FROM login_throttle WHERE login = ANY($1::text[])", counters
        )
    answers = await asyncio.gather(*guesses)

    # then: each was checked and counted, one after the other
    assert [answer.status_code for answer in answers] == [401, 401, 401]
    async with _owner(committing_database) as conn:
        rows = await conn.fetch(
            "SELECT login, failures FROM login_throttle WHERE login = ANY($1::text[])", counters
        )
    assert {row["login"]: row["failures"] for row in rows} == dict.fromkeys(counters, 3)
