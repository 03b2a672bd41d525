"""JWT access tokens (PyJWT, HS256): issued at login, checked on every protected request.

Each token names its session (`sid`, the refresh-token family it was issued with), so
ending the session (a logout, a replayed refresh token) ends its access tokens as well,
not only when they expire (lambda_app.identity.dependencies checks it).

Each token names the key that signed it in its header (`kid`, lambda_app.identity.keyring).
The check picks that one key by its kid before verifying: a token whose kid is missing or
unknown is refused like a forged one, and no other key is ever tried.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import jwt

from lambda_app.identity.keyring import SigningKey

JWT_ALGORITHM = "HS256"
# The only algorithms a token may claim. A fixed list closes `alg: none` and
# HS/RS confusion: PyJWT rejects anything else before looking at the signature.
ACCEPTED_JWT_ALGORITHMS = [JWT_ALGORITHM]
REQUIRED_CLAIMS = ["exp", "iat", "sub", "ver", "sid"]


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_in: int


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    token_version: int
    session_id: uuid.UUID


class InvalidToken(Exception):
    pass


def create_access_token(
    *,
    user_id: int,
    token_version: int,
    session_id: uuid.UUID,
    key: SigningKey,
    lifetime: dt.timedelta,
) -> AccessToken:
    now = dt.datetime.now(dt.UTC)
    claims = {
        "sub": str(user_id),
        "ver": token_version,
        "sid": str(session_id),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
    }
    token = jwt.encode(claims, key.key, algorithm=JWT_ALGORITHM, headers={"kid": key.kid})
    return AccessToken(token=token, expires_in=int(lifetime.total_seconds()))


def claimed_kid(token: str) -> str:
    """The kid a token names, unverified: only to choose the key that checks it."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("missing or unknown kid")
    return kid


def verify_access_token(token: str, key: SigningKey | None) -> TokenClaims:
    """The claims of `token`, checked with `key`: the one its kid names (None: no key
    we know). Everything but the choice of key comes from jwt.decode."""
    if key is None:
        raise InvalidToken("missing or unknown kid")
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=ACCEPTED_JWT_ALGORITHMS,
            options={"require": REQUIRED_CLAIMS},
        )
        user_id = int(claims["sub"])
        version = claims["ver"]
        session_id = uuid.UUID(claims["sid"]) if isinstance(claims["sid"], str) else None
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise InvalidToken(str(exc)) from exc
    malformed_version = not isinstance(version, int) or isinstance(version, bool)
    if malformed_version or user_id < 1 or session_id is None:
        raise InvalidToken("malformed claims")
    return TokenClaims(user_id=user_id, token_version=version, session_id=session_id)
