"""Password hashing: Argon2id through pwdlib.

pwdlib and argon2 are imported on first use: only logging in, registering and
changing a password hash anything, and most cold starts serve none of those. The
cost comes from `PasswordHashSettings`, which both functions validate at start-up.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from lambda_app.core.settings import PasswordHashSettings, load_settings

if TYPE_CHECKING:
    from pwdlib import PasswordHash


@lru_cache(maxsize=1)
def _password_hash() -> PasswordHash:
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    settings = load_settings(PasswordHashSettings)
    hasher = Argon2Hasher(
        memory_cost=settings.password_hash_memory_kib,
        time_cost=settings.password_hash_time_cost,
        parallelism=settings.password_hash_parallelism,
    )
    return PasswordHash((hasher,))


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _password_hash().hash("dummy password that never matches anything")


def hash_password(password: str) -> str:
    return _password_hash().hash(password)


def verify_password(password: str, hashed: str) -> tuple[bool, str | None]:
    """(valid, new hash) where new hash is set when the stored one uses old parameters."""
    return _password_hash().verify_and_update(password, hashed)


def burn_verify_time(password: str) -> None:
    """Spend the time a real verification costs, for users that don't exist.

    Without it an attacker could tell unknown usernames by how fast we answer.
    """
    _password_hash().verify(password, _dummy_hash())
