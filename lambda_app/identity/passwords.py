"""Password hashing: Argon2id through pwdlib.

pwdlib and argon2 are imported on first use: only logging in, registering and
changing a password hash anything, and most cold starts serve none of those. The
cost comes from `PasswordHashSettings`, which both functions validate at start-up.
"""

from __future__ import annotations

import base64
import os
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING

from lambda_app.core.settings import PasswordHashSettings, load_settings

if TYPE_CHECKING:
    from argon2 import Parameters
    from pwdlib import PasswordHash


@lru_cache(maxsize=1)
def _parameters() -> Parameters:
    """Every parameter a hash records, so real hashes and the dummy share one source."""
    import argon2
    from argon2.low_level import ARGON2_VERSION

    settings = load_settings(PasswordHashSettings)
    return argon2.Parameters(
        type=argon2.Type.ID,
        version=ARGON2_VERSION,
        salt_len=argon2.DEFAULT_RANDOM_SALT_LENGTH,
        hash_len=argon2.DEFAULT_HASH_LENGTH,
        time_cost=settings.password_hash_time_cost,
        memory_cost=settings.password_hash_memory_kib,
        parallelism=settings.password_hash_parallelism,
    )


@lru_cache(maxsize=1)
def _password_hash() -> PasswordHash:
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    params = _parameters()
    hasher = Argon2Hasher(
        time_cost=params.time_cost,
        memory_cost=params.memory_cost,
        parallelism=params.parallelism,
        hash_len=params.hash_len,
        salt_len=params.salt_len,
        type=params.type,
    )
    return PasswordHash((hasher,))


def _phc_b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash in the stored format with the configured cost, built without hashing.

    Verifying against it is one Argon2 computation at exactly a real hash's cost, and
    it matches no password: its digest is random bytes, so a match would take an Argon2
    preimage. Neither argon2-cffi nor pwdlib encodes a hash without computing one, hence
    the PHC string format (argon2-cffi's "$argon2id$v=19$m=..,t=..,p=..$salt$digest",
    unpadded base64) by hand; `tests/identity/test_passwords.py` checks it parses back
    to these parameters.
    """
    params = _parameters()
    salt = _phc_b64(os.urandom(params.salt_len))
    digest = _phc_b64(os.urandom(params.hash_len))
    cost = f"m={params.memory_cost},t={params.time_cost},p={params.parallelism}"
    return f"$argon2{params.type.name.lower()}$v={params.version}${cost}${salt}${digest}"


def normalize_password(password: str) -> str:
    """NFKC, as NIST SP 800-63B asks: the same characters, typed composed or not (macOS
    types `ä` as `a` + U+0308), or in a compatibility form (`ﬀ`, full-width letters), are
    one password."""
    return unicodedata.normalize("NFKC", password)


def _forms(password: str) -> list[str]:
    """What `password` may have been hashed as: normalized, and, if that differs, as
    typed (every hash made before passwords were normalized)."""
    normalized = normalize_password(password)
    return [normalized] if normalized == password else [normalized, password]


def hash_password(password: str) -> str:
    return _password_hash().hash(normalize_password(password))


def verify_password(password: str, hashed: str) -> tuple[bool, str | None]:
    """(valid, new hash) where new hash is set when the stored one should be replaced:
    made with old parameters, or from the password as typed, not normalized."""
    normalized, *as_typed = _forms(password)
    valid, new_hash = _password_hash().verify_and_update(normalized, hashed)
    if valid or not as_typed:
        return valid, new_hash
    if _password_hash().verify(as_typed[0], hashed):
        return True, hash_password(normalized)
    return False, None


def burn_verify_time(password: str) -> None:
    """Spend the time a real verification costs, for users that don't exist: one
    verification per form `verify_password` tries.

    Without it an attacker could tell unknown usernames by how fast we answer. The
    dummy hash costs no Argon2 computation to build, so the first unknown user a
    container sees costs the same as every later one.
    """
    for form in _forms(password):
        _password_hash().verify(form, _dummy_hash())


def clear_cache() -> None:
    """Forget the hasher and the dummy (and the settings they were built with): tests, to
    start as a fresh container does or after a change of cost."""
    _parameters.cache_clear()
    _password_hash.cache_clear()
    _dummy_hash.cache_clear()
