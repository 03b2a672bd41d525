"""Password hashing (Argon2 through pwdlib) and JWT access tokens (PyJWT, HS256).

pwdlib and argon2 are imported on first use: only logging in, registering and
changing a password hash anything, and most cold starts serve none of those.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import jwt

from lambda_app.core.settings import get_settings

if TYPE_CHECKING:
    from pwdlib import PasswordHash

JWT_ALGORITHM = "HS256"
# The only algorithms a token may claim. A fixed list closes `alg: none` and
# HS/RS confusion: PyJWT rejects anything else before looking at the signature.
ACCEPTED_JWT_ALGORITHMS = [JWT_ALGORITHM]
REQUIRED_CLAIMS = ["exp", "iat", "sub", "ver"]


@lru_cache(maxsize=1)
def _password_hash() -> PasswordHash:
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    settings = get_settings()
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


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_in: int


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    token_version: int


class InvalidToken(Exception):
    pass


def create_access_token(
    *, user_id: int, token_version: int, secret: str, lifetime: dt.timedelta
) -> AccessToken:
    now = dt.datetime.now(dt.UTC)
    claims = {
        "sub": str(user_id),
        "ver": token_version,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
    }
    token = jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)
    return AccessToken(token=token, expires_in=int(lifetime.total_seconds()))


def decode_access_token(token: str, *, secret: str) -> TokenClaims:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=ACCEPTED_JWT_ALGORITHMS,
            options={"require": REQUIRED_CLAIMS},
        )
        user_id = int(claims["sub"])
        version = claims["ver"]
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise InvalidToken(str(exc)) from exc
    if not isinstance(version, int) or isinstance(version, bool) or user_id < 1:
        raise InvalidToken("malformed claims")
    return TokenClaims(user_id=user_id, token_version=version)
