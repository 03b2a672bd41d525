"""The dummy hash that unknown users are checked against: a real hash's cost, no match.

How many Argon2 computations a login costs, first in a fresh container and afterwards:
tests/reliability/test_auth_attacks.py, where the timing attacks live.
"""

from __future__ import annotations

from collections.abc import Iterator

import argon2
import pytest
from pwdlib.hashers.argon2 import Argon2Hasher

from lambda_app.identity import passwords

DEFAULT_COST = {"memory_cost": 19_456, "time_cost": 2, "parallelism": 1}
OTHER_COST = {"memory_cost": 8_192, "time_cost": 3, "parallelism": 2}


@pytest.fixture(params=[DEFAULT_COST, OTHER_COST], ids=["default cost", "other cost"])
def cost(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, int]]:
    """A fresh container configured with this cost: nothing hashed or cached yet."""
    cost: dict[str, int] = request.param
    monkeypatch.setenv("PASSWORD_HASH_MEMORY_KIB", str(cost["memory_cost"]))
    monkeypatch.setenv("PASSWORD_HASH_TIME_COST", str(cost["time_cost"]))
    monkeypatch.setenv("PASSWORD_HASH_PARALLELISM", str(cost["parallelism"]))
    passwords.clear_cache()
    yield cost
    monkeypatch.undo()
    passwords.clear_cache()


def test_the_dummy_hash_has_exactly_the_parameters_of_a_real_one(cost: dict[str, int]) -> None:
    # given: the dummy, built first, then a real hash made with the same settings
    dummy = passwords._dummy_hash()
    real = passwords.hash_password("a real user's password")

    # then: the same algorithm, version, salt and digest lengths and cost...
    assert argon2.extract_parameters(dummy) == argon2.extract_parameters(real)
    assert argon2.extract_parameters(dummy).type is argon2.Type.ID
    # ...which is the configured one, as pwdlib and argon2-cffi themselves judge it
    assert not Argon2Hasher(**cost).check_needs_rehash(dummy)
    assert not argon2.PasswordHasher(**cost).check_needs_rehash(dummy)
    assert Argon2Hasher.identify(dummy)


@pytest.mark.parametrize(
    "password",
    [
        "",
        "correct horse battery staple",
        "dummy password that never matches anything",
        "pässwörd ✓ 🔑",
        "x" * 4096,
    ],
)
def test_no_password_matches_the_dummy_hash(password: str) -> None:
    dummy = passwords._dummy_hash()
    assert passwords.verify_password(password, dummy) == (False, None)
    # argon2-cffi checked it (a mismatch, not a hash it refused to read)
    with pytest.raises(argon2.exceptions.VerifyMismatchError):
        argon2.PasswordHasher().verify(dummy, password)
