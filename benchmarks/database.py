"""The benchmark's own database: migrated like production, seeded with one user.

It lives on the same PostgreSQL server as development and tests (the embedded
one unless DATABASE_URL is set) but in a database of its own, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

BENCH_DATABASE = "lambda_app_bench"
# Signs the benchmark's tokens only; never used outside this throwaway database.
BENCH_JWT_SECRET = "benchmark-only-jwt-secret-0123456789abcdef"
BENCH_USERNAME = "bench_user"


@dataclass(frozen=True)
class BenchDatabase:
    url: str  # postgresql+asyncpg://... of the seeded database, as the API's role
    user_id: int
    username: str
    token: str  # a valid access token for that user, signed with BENCH_JWT_SECRET


async def _seed(url: str) -> tuple[int, int, uuid.UUID]:
    """The user, and a session of theirs (a refresh token's row) for A's token to name."""
    from lambda_app.devtools.database import plain_connection
    from lambda_app.identity.opaque_tokens import new_token, token_digest
    from lambda_app.identity.passwords import hash_password

    session_id = uuid.uuid4()
    async with plain_connection(url) as conn:
        row = await conn.fetchrow(
            "INSERT INTO users (username, slug, email, first_name, last_name, hashed_password)"
            " VALUES ($1, $2, $3, 'Bench', 'User', $4) RETURNING id, token_version",
            BENCH_USERNAME,
            BENCH_USERNAME.replace("_", "-"),
            f"{BENCH_USERNAME}@example.com",
            hash_password("bench password, never used to log in"),
        )
        assert row is not None
        await conn.execute(
            "INSERT INTO refresh_tokens (user_id, family_id, token_hash, token_version,"
            " expires_at) VALUES ($1, $2, $3, $4, now() + interval '1 day')",
            row["id"],
            session_id,
            token_digest(new_token()),
            row["token_version"],
        )
    return int(row["id"]), int(row["token_version"]), session_id


@contextlib.contextmanager
def bench_database(name: str = BENCH_DATABASE) -> Iterator[BenchDatabase]:
    """A fresh, migrated database `name` with one user; dropped on exit."""
    from lambda_app.devtools.database import (
        database_url,
        drop_database,
        ensure_database,
        prepare_api_role,
        server_admin_url,
    )
    from lambda_app.identity.keyring import SigningKey
    from lambda_app.identity.tokens import create_access_token
    from lambda_app.migrate.runner import upgrade_to_head

    with server_admin_url() as admin:
        asyncio.run(drop_database(admin, name))
        asyncio.run(ensure_database(admin, name))
        url = database_url(admin, name)
        try:
            upgrade_to_head(url)
            user_id, token_version, session_id = asyncio.run(_seed(url))
            token = create_access_token(
                user_id=user_id,
                token_version=token_version,
                session_id=session_id,
                key=SigningKey.from_plain(BENCH_JWT_SECRET),
                lifetime=dt.timedelta(hours=12),
            )
            yield BenchDatabase(
                url=prepare_api_role(url),
                user_id=user_id,
                username=BENCH_USERNAME,
                token=token.token,
            )
        finally:
            asyncio.run(drop_database(admin, name))
