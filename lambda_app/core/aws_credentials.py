"""Credentials from AWS: RDS IAM auth tokens and Secrets Manager secrets.

Imported only when an AWS source is configured (`DB_IAM_AUTH`, `DB_SECRET_ARN`,
`JWT_SECRET_ARN`, ...), so the `DATABASE_URL` path never imports boto3.

Database connections on these sources are opened by an *async creator* (see
`ConnectionPlan`): SQLAlchemy calls it for every new connection, so an IAM token
or a rotated password is picked up without rebuilding the engine, and an
authentication failure can be retried here with a re-fetched secret.

Tokens and passwords are never logged and never part of a repr or an error message.
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
from sqlalchemy.engine import URL

from lambda_app.core.db_credentials import (
    ConnectionPlan,
    DatabaseNotConfigured,
    ssl_argument,
)
from lambda_app.core.settings import DbSslMode, Settings

logger = logging.getLogger(__name__)

# botocore's DEBUG log prints request and response bodies: the very secrets fetched
# here. LOG_LEVEL=DEBUG on the root logger must not turn that on.
for _name in ("boto3", "botocore"):
    logging.getLogger(_name).setLevel(max(logging.INFO, logging.getLogger(_name).level))

# RDS accepts a token for 15 minutes after signing; re-sign well before that, so
# a connection opened just before the limit never presents an expired token.
IAM_TOKEN_MAX_AGE_SECONDS = 10 * 60

# After a failed secret refresh, keep the cached secret this long before trying again.
STALE_RETRY_SECONDS = 30.0

# SQLSTATE 28xxx: wrong password (28P01) or refused login (28000), e.g. a password
# rotated after we cached the secret.
_AUTH_FAILURES = (asyncpg.InvalidAuthorizationSpecificationError,)

# Wall-clock time: a token's validity is judged by AWS on the wall clock, and the
# monotonic clock is not reliable across a Lambda freeze or snapshot restore.
Clock = Callable[[], float]


class SecretFormatError(ValueError):
    """A secret that is not what we expect. The message never quotes the secret."""


# --- boto3 ---------------------------------------------------------------------------


def _client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    # A few quick retries, not the SDK's patient defaults: this runs inside a
    # request that has its own deadline.
    config = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 3})
    return boto3.client(service, config=config)


def fetch_secret_string(arn: str) -> str:
    """The current `SecretString` of a Secrets Manager secret (one network call)."""
    return _secret_string(_client("secretsmanager"), arn)


def _secret_string(client: Any, arn: str) -> str:
    response = client.get_secret_value(SecretId=arn)
    value = response.get("SecretString")
    if not isinstance(value, str):
        raise SecretFormatError(f"secret {arn} has no SecretString (binary secrets unsupported)")
    return value


def secret_fetcher(arn: str) -> Callable[[], str]:
    """`fetch_secret_string(arn)` with one boto3 client kept for the process's later fetches."""
    client: Any = None

    def fetch() -> str:
        nonlocal client
        if client is None:
            client = _client("secretsmanager")
        return _secret_string(client, arn)

    return fetch


def iam_token_signer(*, host: str, port: int, user: str) -> Callable[[], str]:
    """Signs RDS IAM auth tokens locally (SigV4 presigning: no network call).

    The region is the Lambda's own (`AWS_REGION`); the token must be signed for
    the host name the client dials (the RDS Proxy endpoint when there is one).
    """
    client: Any = None

    def sign() -> str:
        nonlocal client
        if client is None:
            client = _client("rds")
        token: str = client.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user)
        return token

    return sign


# --- caches ----------------------------------------------------------------------------


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
            age = now - self._signed_at
            # A negative age means the wall clock moved back: don't trust the old token.
            if self._token is None or not 0 <= age < self._max_age:
                self._token = self._sign()
                self._signed_at = now
                logger.info("signed a new RDS IAM auth token")
            return self._token

    def __repr__(self) -> str:
        return f"IamAuthTokens(max_age_seconds={self._max_age})"


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


# --- connectors (the engine's async creators) -------------------------------------------


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
            password=self.tokens.current(),
            **driver_args,
        )


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


# --- the plan ---------------------------------------------------------------------------


def plan_aws_connection(settings: Settings, *, clock: Clock = time.time) -> ConnectionPlan:
    """A connection plan for IAM auth (b) or a Secrets Manager secret (c). No network call."""
    if settings.db_iam_auth and settings.db_secret_arn:
        raise DatabaseNotConfigured("set either DB_IAM_AUTH=true or DB_SECRET_ARN, not both")
    ssl = ssl_argument(settings.db_ssl or DbSslMode.VERIFY_FULL)
    # For the dialect and for display only: the creator dials, and there's no password.
    url = URL.create(
        "postgresql+asyncpg",
        host=settings.db_host,
        port=settings.db_port if settings.db_host else None,
        database=settings.db_name,
    )
    if settings.db_iam_auth:
        connector = _iam(settings, clock)
        return ConnectionPlan(url=url, connect_args={"ssl": ssl}, async_creator=connector)
    assert settings.db_secret_arn is not None
    # DB_PORT has a default: it only overrides the secret's port when actually set.
    port = settings.db_port if "db_port" in settings.model_fields_set else None
    return ConnectionPlan(
        url=url,
        connect_args={"ssl": ssl},
        async_creator=SecretConnector(
            secrets=CachedDbSecret(
                secret_fetcher(settings.db_secret_arn),
                ttl_seconds=settings.db_secret_ttl_seconds,
                clock=clock,
            ),
            host=settings.db_host,
            port=port,
            database=settings.db_name,
        ),
    )


def _iam(settings: Settings, clock: Clock) -> IamConnector:
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
