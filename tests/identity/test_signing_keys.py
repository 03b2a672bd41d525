"""Signing keys: the secret's format, the per-process cache, and rotation as users see it."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lambda_app.core import settings as core_settings
from lambda_app.core.aws import SecretFormatError
from lambda_app.handlers.rotate_signing_key import rotate as rotation_step
from lambda_app.identity import signing_key
from lambda_app.identity.keyring import (
    MIN_KEY_LENGTH,
    SigningKey,
    SigningKeys,
    derived_kid,
    parse_signing_keys,
)
from lambda_app.identity.signing_key import (
    STALE_RETRY_SECONDS,
    UNKNOWN_KID_REFETCH_SECONDS,
    SigningKeyCache,
)
from lambda_app.identity.tokens import (
    InvalidToken,
    claimed_kid,
    create_access_token,
    verify_access_token,
)
from lambda_app.models import User
from tests.fixtures.accounts import login, session_id
from tests.fixtures.fresh_interpreter import run_python
from tests.fixtures.rotation import (
    PLAIN_KEY,
    begin_rotation,
    end_rotation,
    moto_jwt_secret,
    rotate,
)

A = SigningKey(kid="a", key="a" * 40)
B = SigningKey(kid="b", key="b" * 40)

# --- the format ------------------------------------------------------------------------


def test_a_plain_secret_is_one_current_key_with_a_derived_kid() -> None:
    keys = parse_signing_keys("x" * 64)
    assert keys == SigningKeys(current=SigningKey(kid=derived_kid("x" * 64), key="x" * 64))
    assert keys.current.kid.startswith("plain-") and "x" not in keys.current.kid


def test_the_json_format_round_trips() -> None:
    keys = SigningKeys(current=B, previous=A)
    assert parse_signing_keys(keys.to_secret_string()) == keys
    assert json.loads(keys.to_secret_string())["previous"] == {"kid": "a", "key": "a" * 40}
    assert parse_signing_keys(SigningKeys(current=A).to_secret_string()).previous is None


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        '{"current": "k"}',
        '{"previous": null}',
        '{"current": {"kid": "a"}}',
        '{"current": {"kid": "has space", "key": "k"}}',
        '{"current": {"kid": "a", "key": "k"}, "previous": {"kid": "a", "key": "j"}}',
    ],
)
def test_a_broken_key_ring_is_refused_without_quoting_it(raw: str) -> None:
    with pytest.raises(SecretFormatError) as raised:
        parse_signing_keys(raw)
    assert '"k"' not in str(raised.value) and 'key": ' not in str(raised.value)


def test_keys_never_show_in_a_repr() -> None:
    assert "a" * 40 not in repr(SigningKeys(current=A, previous=B))


def test_the_key_length_floor_is_the_settings_one() -> None:
    assert MIN_KEY_LENGTH == core_settings.MIN_JWT_SECRET_LENGTH
    assert len(SigningKey.generate().key) >= 64


def test_tokens_name_their_key_and_are_checked_with_that_one_only() -> None:
    token = create_access_token(
        user_id=7, token_version=0, session_id=uuid.uuid4(), key=B, lifetime=dt.timedelta(minutes=5)
    ).token
    kid = claimed_kid(token)
    assert kid == "b"
    assert verify_access_token(token, SigningKeys(current=B, previous=A).find(kid)).user_id == 7
    with pytest.raises(InvalidToken):
        verify_access_token(token, SigningKeys(current=A).find(kid))  # b is not known
    with pytest.raises(InvalidToken):
        verify_access_token(token, A)  # no other key is ever tried


# --- the cache -------------------------------------------------------------------------


class _Source:
    def __init__(self, keys: SigningKeys) -> None:
        self.keys: SigningKeys | Exception = keys
        self.loads = 0

    def __call__(self) -> SigningKeys:
        self.loads += 1
        if isinstance(self.keys, Exception):
            raise self.keys
        return self.keys


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_keys_are_kept_for_the_ttl_then_fetched_again() -> None:
    source, clock = _Source(SigningKeys(current=A)), _Clock()
    cache = SigningKeyCache(source, ttl_seconds=300, clock=clock)
    assert source.loads == 0  # nothing until first use
    assert cache.get().current == A
    source.keys = SigningKeys(current=B, previous=A)
    clock.now += 299
    assert cache.get().current == A and source.loads == 1
    clock.now += 1
    assert cache.get().current == B and source.loads == 2


def test_the_keys_age_by_the_wall_clock_which_runs_on_while_lambda_is_frozen() -> None:
    # The monotonic clock stands still while Lambda freezes a container between requests
    # (and starts again at a SnapStart restore): by it, a container serving a request a
    # minute would keep keys a rotation retired for hours. A fresh interpreter, whose wall
    # clock is moved past the TTL while its monotonic clock is not (the default clock is
    # bound when the module is imported, so time.time is moved before that).
    result = run_python(
        "import time\n"
        "wall, frozen_for = time.time, [0.0]\n"
        "time.time = lambda: wall() + frozen_for[0]\n"
        "from lambda_app.identity.keyring import SigningKey, SigningKeys\n"
        "from lambda_app.identity.signing_key import SigningKeyCache\n"
        "a, b = SigningKey(kid='a', key='a' * 40), SigningKey(kid='b', key='b' * 40)\n"
        "secret = [SigningKeys(current=a)]\n"
        "cache = SigningKeyCache(lambda: secret[0], ttl_seconds=300)\n"
        "cache.get()\n"
        "secret[0] = SigningKeys(current=b, previous=a)\n"
        "frozen_for[0] = 300\n"
        "print(cache.get().current.kid)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "b"  # the rotated key, after 300 s of wall time


def test_keys_are_fetched_again_when_the_wall_clock_steps_back() -> None:
    # NTP may step the wall clock back: the keys' age is then unknown, so they are not
    # trusted for another TTL.
    source, clock = _Source(SigningKeys(current=A)), _Clock()
    cache = SigningKeyCache(source, ttl_seconds=300, clock=clock)
    cache.get()
    source.keys = SigningKeys(current=B, previous=A)
    clock.now -= 1
    assert cache.get().current == B and source.loads == 2


def test_a_failed_refresh_keeps_the_cached_keys() -> None:
    source, clock = _Source(SigningKeys(current=A)), _Clock()
    cache = SigningKeyCache(source, ttl_seconds=300, clock=clock)
    cache.get()
    source.keys = RuntimeError("Secrets Manager is down")
    clock.now += 300
    assert cache.get().current == A and source.loads == 2
    clock.now += STALE_RETRY_SECONDS - 1
    assert cache.get().current == A and source.loads == 2  # not hammered while it is down
    clock.now += 1
    cache.get()
    assert source.loads == 3


def test_an_unknown_kid_fetches_again_at_most_once_in_a_while() -> None:
    source, clock = _Source(SigningKeys(current=A)), _Clock()
    cache = SigningKeyCache(source, ttl_seconds=300, clock=clock)
    assert cache.key_for("a") == A and source.loads == 1
    # a container that fetched the rotated secret first signed with b
    source.keys = SigningKeys(current=B, previous=A)
    assert cache.key_for("b") == B and source.loads == 2
    # forged kids: one fetch per UNKNOWN_KID_REFETCH_SECONDS, not one per request
    assert cache.key_for("forged-1") is None and source.loads == 2  # (just fetched)
    clock.now += UNKNOWN_KID_REFETCH_SECONDS
    assert cache.key_for("forged-2") is None and source.loads == 3
    assert cache.key_for("forged-3") is None and source.loads == 3


def test_would_fetch_tells_whether_the_next_lookup_fetches() -> None:
    # Requests fetch in a worker thread when it says so (signing_key_for_request).
    source, clock = _Source(SigningKeys(current=A)), _Clock()
    cache = SigningKeyCache(source, ttl_seconds=300, clock=clock)

    def predicted_then_fetched(kid: str | None) -> tuple[bool, bool]:
        predicted, before = cache.would_fetch(kid), source.loads
        if kid is None:
            cache.get()
        else:
            cache.key_for(kid)
        return predicted, source.loads > before

    assert predicted_then_fetched(None) == (True, True)  # nothing fetched yet
    assert predicted_then_fetched("a") == (False, False)
    assert predicted_then_fetched("forged-1") == (True, True)  # an unknown kid, once
    assert predicted_then_fetched("forged-2") == (False, False)
    clock.now += UNKNOWN_KID_REFETCH_SECONDS
    assert predicted_then_fetched("forged-3") == (True, True)
    clock.now += 300
    assert predicted_then_fetched("a") == (True, True)  # the TTL is up


def test_would_fetch_never_waits_for_a_fetch_under_way() -> None:
    cache = SigningKeyCache(_Source(SigningKeys(current=A)), ttl_seconds=300)
    cache.get()
    with cache._lock:  # another thread fetching (a request that gave up on it)
        assert cache.would_fetch("a") is True
    assert cache.would_fetch("a") is False


# --- rotation, as a signed-in user sees it ---------------------------------------------


@pytest.fixture
def keys_from_secrets_manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    """The API reading its keys from (moto's) Secrets Manager, fetched on every use."""
    with moto_jwt_secret(monkeypatch) as (client, arn):
        monkeypatch.setenv("JWT_SECRET_ARN", arn)
        monkeypatch.setenv("JWT_SECRET_TTL_SECONDS", "0")
        core_settings.get_settings.cache_clear()
        signing_key.clear_cache()
        yield client, arn
    monkeypatch.undo()
    core_settings.get_settings.cache_clear()
    signing_key.clear_cache()


async def _me(client: httpx.AsyncClient, token: str) -> int:
    response = await client.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    return response.status_code


async def test_a_token_outlives_one_rotation_but_not_two(
    client: httpx.AsyncClient, user: User, keys_from_secrets_manager: tuple[Any, str]
) -> None:
    secrets, arn = keys_from_secrets_manager
    # given: a token signed with today's plain key, in a session the API started
    live = session_id(await login(client, user.username))
    before = create_access_token(
        user_id=user.id,
        token_version=user.token_version,
        session_id=live,
        key=signing_key.current_signing_key(),
        lifetime=dt.timedelta(minutes=30),
    ).token
    assert await _me(client, before) == 200

    # when: the key is rotated, the old token still works and new ones use the new key
    rotate(secrets, arn)
    assert await _me(client, before) == 200
    after = create_access_token(
        user_id=user.id,
        token_version=user.token_version,
        session_id=live,
        key=signing_key.current_signing_key(),
        lifetime=dt.timedelta(minutes=30),
    ).token
    assert after != before and await _me(client, after) == 200

    # then: a second rotation retires the first key, but not the second
    rotate(secrets, arn)
    assert await _me(client, before) == 401
    assert await _me(client, after) == 200


async def test_the_pending_key_is_neither_signed_with_nor_accepted_until_it_is_current(
    client: httpx.AsyncClient, user: User, keys_from_secrets_manager: tuple[Any, str]
) -> None:
    secrets, arn = keys_from_secrets_manager
    live = session_id(await login(client, user.username))
    # given: a rotation that has created and tested its new key, not yet finished
    token = begin_rotation(secrets, arn)
    for step in ("createSecret", "setSecret", "testSecret"):
        rotation_step(secrets, step=step, arn=arn, token=token)
    pending = parse_signing_keys(
        secrets.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")[
            "SecretString"
        ]
    ).current
    signed_with_pending = create_access_token(
        user_id=user.id,
        token_version=user.token_version,
        session_id=live,
        key=pending,
        lifetime=dt.timedelta(minutes=30),
    ).token

    # then: the API (fetching on every use) still signs with the current key, and a
    # token naming the pending key is refused, as any unknown kid is
    assert signing_key.current_signing_key().kid == derived_kid(PLAIN_KEY)
    assert signing_key.signing_key_for(pending.kid) is None
    assert await _me(client, signed_with_pending) == 401

    # when finishSecret has made it current, the same token is accepted
    rotation_step(secrets, step="finishSecret", arn=arn, token=token)
    end_rotation(secrets, arn, token)
    assert signing_key.current_signing_key() == pending
    assert await _me(client, signed_with_pending) == 200
