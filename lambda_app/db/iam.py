"""RDS IAM authentication (`DB_IAM_AUTH=true`): how the API signs in to RDS Proxy.

Tokens are signed locally (SigV4 presigning, no call to RDS or IAM) with the function's
own credentials, for the host name the client dials, and reused for new connections
for at most `IAM_TOKEN_MAX_AGE_SECONDS`. Tokens are never logged or part of a repr.

Signing can still wait on the network: botocore resolves the credentials first. A
SnapStart function gets them from Lambda's local credentials endpoint
(`AWS_CONTAINER_CREDENTIALS_FULL_URI`), not from environment variables, so the first
signature after a restore, and each signature after the credentials' refresh, is an
HTTP call. The connector therefore signs in a worker thread: inline, a stalled endpoint
would hold the event loop, and with it the request's deadline (core.deadline), for up
to botocore's retries. A token still fresh is handed over inline.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from lambda_app.core import aws
from lambda_app.core.settings import DatabaseSettings
from lambda_app.db.plan import Clock, DatabaseNotConfigured

logger = logging.getLogger(__name__)

# RDS accepts a token for 15 minutes after signing; re-sign well before that, so
# a connection opened just before the limit never presents an expired token.
IAM_TOKEN_MAX_AGE_SECONDS = 10 * 60


def iam_token_signer(*, host: str, port: int, user: str) -> Callable[[], str]:
    """Signs RDS IAM auth tokens locally (SigV4 presigning; credentials may be fetched).

    The region is the Lambda's own (`AWS_REGION`); the token must be signed for
    the host name the client dials (the RDS Proxy endpoint when there is one).
    """
    client: Any = None

    def sign() -> str:
        nonlocal client
        if client is None:
            client = aws.client("rds")
        token: str = client.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user)
        return token

    return sign


class IamAuthTokens:
    """The current IAM auth token for one host/port/user: reused for new connections
    for at most `max_age_seconds`, then signed again."""

    def __init__(
        self,
        sign: Callable[[], str],
        *,
        clock: Clock = time.time,
        max_age_seconds: float = IAM_TOKEN_MAX_AGE_SECONDS,
    ) -> None:
        self._sign = sign
        self._clock = clock
        self._max_age = max_age_seconds
        self._token: str | None = None
        self._signed_at = 0.0
        self._lock = threading.Lock()

    def current(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is None or self._expired(now):
                self._token = self._sign()
                self._signed_at = now
                logger.info("signed a new RDS IAM auth token")
            return self._token

    def would_sign(self) -> bool:
        """Whether `current()` would sign now. Never waits: a signature under way in another
        thread (for a request that gave up on it) counts as one."""
        if not self._lock.acquire(blocking=False):
            return True
        try:
            return self._token is None or self._expired(self._clock())
        finally:
            self._lock.release()

    async def current_for_request(self) -> str:
        """`current()`, signing in a worker thread (see the module's docstring)."""
        if self.would_sign():
            return await asyncio.to_thread(self.current)
        return self.current()

    def _expired(self, now: float) -> bool:
        # A negative age means the wall clock moved back: don't trust the old token.
        return not 0 <= now - self._signed_at < self._max_age

    def __repr__(self) -> str:
        return f"IamAuthTokens(max_age_seconds={self._max_age})"


@dataclass(frozen=True)
class IamConnector:
    """Opens asyncpg connections authenticated with an RDS IAM auth token."""

    host: str
    port: int
    database: str
    user: str
    tokens: IamAuthTokens

    async def __call__(self, **driver_args: Any) -> Any:
        return await asyncpg.connect(
            host=self.host,
            port=self.port,
            database=self.database,
            user=self.user,
            password=await self.tokens.current_for_request(),
            **driver_args,
        )


def iam_connector(settings: DatabaseSettings, *, clock: Clock = time.time) -> IamConnector:
    missing = [
        name
        for name, value in (
            ("DB_HOST", settings.db_host),
            ("DB_NAME", settings.db_name),
            ("DB_USER", settings.db_user),
        )
        if not value
    ]
    if missing:
        raise DatabaseNotConfigured(f"DB_IAM_AUTH=true needs {', '.join(missing)}")
    assert settings.db_host and settings.db_name and settings.db_user
    signer = iam_token_signer(host=settings.db_host, port=settings.db_port, user=settings.db_user)
    return IamConnector(
        host=settings.db_host,
        port=settings.db_port,
        database=settings.db_name,
        user=settings.db_user,
        tokens=IamAuthTokens(signer, clock=clock),
    )
