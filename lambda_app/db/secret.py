"""A Secrets Manager database secret (`DB_SECRET_ARN`): how the migration function signs in.

The secret is in the JSON format RDS and CDK generate. It is cached for
`DB_SECRET_TTL_SECONDS`; a login refused after a rotation fetches it again once.
Passwords are never logged or part of a repr or an error message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from lambda_app.core.aws import SecretFormatError
from lambda_app.db.plan import Clock, DatabaseNotConfigured

logger = logging.getLogger(__name__)

# After a failed secret refresh, keep the cached secret this long before trying again.
STALE_RETRY_SECONDS = 30.0

# SQLSTATE 28xxx: wrong password (28P01) or refused login (28000), e.g. a password
# rotated after we cached the secret.
_AUTH_FAILURES = (asyncpg.InvalidAuthorizationSpecificationError,)


@dataclass(frozen=True)
class DbSecret:
    """The fields we use from an RDS/CDK-generated secret (`username`, `password`,
    `host`, `port`, `dbname`, `engine`, ...)."""

    username: str
    password: str = field(repr=False)
    host: str | None = None
    port: int | None = None
    dbname: str | None = None

    @classmethod
    def parse(cls, raw: str) -> DbSecret:
        try:
            data = json.loads(raw)
        except ValueError:
            # `from None`: the decode error carries the whole document.
            raise SecretFormatError("database secret is not JSON") from None
        if not isinstance(data, dict):
            raise SecretFormatError("database secret is not a JSON object")
        username, password = data.get("username"), data.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise SecretFormatError("database secret lacks a string username and password")
        port = data.get("port")
        try:
            port = int(port) if port is not None else None
        except (TypeError, ValueError):
            raise SecretFormatError("database secret has a port that is not a number") from None
        return cls(
            username=username,
            password=password,
            host=_optional_str(data.get("host")),
            port=port,
            dbname=_optional_str(data.get("dbname")),
        )


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class CachedDbSecret:
    """A database secret fetched once and kept for `ttl_seconds` (0: fetched every time).

    Blocking (boto3): the connectors call it from a worker thread.
    """

    def __init__(self, fetch: Callable[[], str], *, ttl_seconds: float, clock: Clock = time.time):
        self._fetch = fetch
        self._ttl = ttl_seconds
        self._clock = clock
        self._secret: DbSecret | None = None
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def get(self) -> DbSecret:
        with self._lock:
            now = self._clock()
            if self._secret is None:
                self._refetch()
            elif not 0 <= now - self._fetched_at < self._ttl:
                try:
                    self._refetch()
                except Exception:
                    # A Secrets Manager outage must not take the database down with it:
                    # the cached password still works until the next rotation.
                    logger.warning("database secret refresh failed; using the cached one")
                    self._fetched_at = now - self._ttl + min(self._ttl, STALE_RETRY_SECONDS)
            assert self._secret is not None
            return self._secret

    def refetch_after_auth_failure(self, failed: DbSecret) -> DbSecret:
        """Fetch again, unless another connection already replaced the secret that failed."""
        with self._lock:
            if self._secret is None or self._secret is failed:
                self._refetch()
            assert self._secret is not None
            return self._secret

    def _refetch(self) -> None:
        self._secret = DbSecret.parse(self._fetch())
        self._fetched_at = self._clock()
        logger.info("fetched the database secret")

    def __repr__(self) -> str:
        return f"CachedDbSecret(ttl_seconds={self._ttl})"


@dataclass(frozen=True)
class SecretConnector:
    """Opens asyncpg connections with a Secrets Manager secret's credentials.

    `host`/`port`/`database` given in the settings win over the secret's, so a
    function can dial the RDS Proxy endpoint with the instance secret's login.
    """

    secrets: CachedDbSecret
    host: str | None = None
    port: int | None = None
    database: str | None = None

    async def __call__(self, **driver_args: Any) -> Any:
        secret = await asyncio.to_thread(self.secrets.get)
        try:
            return await self._connect(secret, driver_args)
        except _AUTH_FAILURES:
            # Rotation: the password may have changed since we cached it. Re-fetch
            # once; retry only with different credentials (a wrong one stays wrong).
            fresh = await asyncio.to_thread(self.secrets.refetch_after_auth_failure, secret)
            if (fresh.username, fresh.password) == (secret.username, secret.password):
                raise
            logger.warning("database login failed; retrying with the re-fetched secret")
            return await self._connect(fresh, driver_args)

    async def _connect(self, secret: DbSecret, driver_args: dict[str, Any]) -> Any:
        host = self.host or secret.host
        database = self.database or secret.dbname
        if host is None or database is None:
            raise DatabaseNotConfigured(
                "the database secret has no host/dbname: set DB_HOST and DB_NAME"
            )
        return await asyncpg.connect(
            host=host,
            port=self.port or secret.port or 5432,
            database=database,
            user=secret.username,
            password=secret.password,
            **driver_args,
        )
