"""JWT access tokens (PyJWT, HS256): issued at login, checked on every protected request."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import jwt

JWT_ALGORITHM = "HS256"
# The only algorithms a token may claim. A fixed list closes `alg: none` and
# HS/RS confusion: PyJWT rejects anything else before looking at the signature.
ACCEPTED_JWT_ALGORITHMS = [JWT_ALGORITHM]
REQUIRED_CLAIMS = ["exp", "iat", "sub", "ver"]


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
