"""B, the floor: `GET /api/users/me` with nothing but asyncpg, hmac and json.

What the product's handler would cost with no framework at all: a hand-rolled
HS256 check, one asyncpg connection per invocation (like the product's NullPool,
because behind RDS Proxy a Lambda does not keep its own pool), one query.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from typing import Any

import asyncpg

_SECRET = os.environ["JWT_SECRET"].encode()
# SQLAlchemy's `ssl=` URL parameter is libpq's `sslmode=` for asyncpg's own DSN parser.
_DSN = (
    os.environ["DATABASE_URL"]
    .replace("postgresql+asyncpg://", "postgresql://", 1)
    .replace("?ssl=", "?sslmode=", 1)
)
_QUERY = (
    "SELECT id, username, slug, email, first_name, last_name, is_active, is_superuser,"
    " created_at, updated_at, token_version FROM users WHERE id = $1"
)
_loop = asyncio.new_event_loop()


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _claims(authorization: str) -> dict[str, Any] | None:
    """The token's claims if it is a valid, unexpired HS256 token signed with our secret."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    try:
        header_b64, payload_b64, signature_b64 = token.split(".")
        header = json.loads(_b64decode(header_b64))
        signature = _b64decode(signature_b64)
        claims = json.loads(_b64decode(payload_b64))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        return None
    expected = hmac.new(_SECRET, f"{header_b64}.{payload_b64}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature) or not isinstance(claims, dict):
        return None
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= time.time():
        return None
    return claims


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


async def _current_user(claims: dict[str, Any]) -> dict[str, Any] | None:
    try:
        user_id = int(claims["sub"])
    except (KeyError, TypeError, ValueError):
        return None
    conn = await asyncpg.connect(_DSN, statement_cache_size=0)
    try:
        row = await conn.fetchrow(_QUERY, user_id)
    finally:
        await conn.close()
    if row is None or not row["is_active"] or row["token_version"] != claims.get("ver"):
        return None
    user = dict(row)
    del user["token_version"]
    user["created_at"] = user["created_at"].isoformat()
    user["updated_at"] = user["updated_at"].isoformat()
    return user


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    headers = event.get("headers") or {}
    claims = _claims(headers.get("authorization", ""))
    user = _loop.run_until_complete(_current_user(claims)) if claims else None
    if user is None:
        return _response(401, {"error": {"code": "not_authenticated", "message": "Unauthorized"}})
    return _response(200, user)
