"""Where database credentials come from, and how the connection is encrypted.

Three sources, picked from the settings:
  (a) `DATABASE_URL`: a full URL, used as is;
  (b) `DB_HOST`/`DB_NAME`/`DB_USER` with `DB_IAM_AUTH=true`: RDS IAM auth tokens;
  (c) `DB_SECRET_ARN`: a Secrets Manager secret in the RDS/CDK JSON format.

(b) and (c) live in `lambda_app.core.aws_credentials`, imported only on those
paths so the common path never pays for importing boto3.

TLS (`DB_SSL`): verify-full against the RDS certificate authorities shipped in
`certs/` by default on the AWS sources; with a URL, whatever the URL says unless
`DB_SSL` is set.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from lambda_app.core.settings import DbSslMode, Settings

RDS_CA_BUNDLE = Path(__file__).resolve().parent / "certs" / "rds-ca-bundle.pem"

# Opens a raw asyncpg connection. It receives the driver-level connect arguments
# (statement cache, timeouts, server_settings, ssl) as keywords and adds the
# credentials itself, fresh for every connection.
AsyncCreator = Callable[..., Awaitable[Any]]


class DatabaseNotConfigured(RuntimeError):
    pass


@dataclass(frozen=True)
class ConnectionPlan:
    url: URL  # never carries a password on the AWS sources
    connect_args: dict[str, Any] = field(default_factory=dict)
    # None: SQLAlchemy connects from `url` and `connect_args` (source a).
    async_creator: AsyncCreator | None = None


def normalize_url(raw: str) -> URL:
    """Accept postgres://, postgresql:// and postgresql+asyncpg:// URLs."""
    try:
        url = make_url(raw)
    except Exception:
        # The parser's message would quote the URL, password included.
        raise DatabaseNotConfigured("DATABASE_URL is not a valid database URL") from None
    if url.drivername in ("postgres", "postgresql", "postgresql+asyncpg"):
        return url.set(drivername="postgresql+asyncpg")
    raise DatabaseNotConfigured(
        f"unsupported database URL scheme {url.drivername!r}: use postgresql:// "
        "(or postgres://, postgresql+asyncpg://)"
    )


def plan_connection(settings: Settings, *, database_url: str | None = None) -> ConnectionPlan:
    if database_url is not None:
        return ConnectionPlan(url=normalize_url(database_url))
    if settings.database_url is not None:
        url = normalize_url(settings.database_url.get_secret_value())
        if settings.db_ssl is None:
            return ConnectionPlan(url=url)  # `?ssl=...` in the URL, or asyncpg's default
        return ConnectionPlan(url=url, connect_args={"ssl": ssl_argument(settings.db_ssl)})
    if settings.db_iam_auth or settings.db_secret_arn:
        from lambda_app.core import aws_credentials  # boto3 only on this path

        return aws_credentials.plan_aws_connection(settings)
    raise DatabaseNotConfigured(
        "no database configured: set DATABASE_URL, or DB_HOST/DB_NAME/DB_USER with "
        "DB_IAM_AUTH=true, or DB_SECRET_ARN"
    )


def ssl_argument(mode: DbSslMode) -> ssl.SSLContext | bool:
    """asyncpg's `ssl=` argument for a `DB_SSL` mode."""
    if mode is DbSslMode.DISABLE:
        return False
    if mode is DbSslMode.REQUIRE:
        return encrypted_unverified_context()
    return rds_verify_full_context()


@functools.cache
def rds_verify_full_context() -> ssl.SSLContext:
    """Certificate chain and host name checked against the bundled RDS CAs (once per process).

    Only the bundle is trusted, not the system store: the server must be RDS or
    RDS Proxy, and the host name we dialled must be on its certificate.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(RDS_CA_BUNDLE))
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@functools.cache
def encrypted_unverified_context() -> ssl.SSLContext:
    # Built by hand: asyncpg's own "require" silently upgrades to verify-ca when
    # ~/.postgresql/root.crt exists, which is not what DB_SSL=require promises.
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
