"""Where database credentials come from.

Three sources, picked from the settings:
  (a) `DATABASE_URL`: a full URL, used as is;
  (b) `DB_HOST`/`DB_NAME`/`DB_USER` with `DB_IAM_AUTH=true`: RDS IAM auth tokens;
  (c) `DB_SECRET_ARN`: a Secrets Manager secret in the RDS/CDK JSON format.

(b) and (c) live in `lambda_app.core.aws_credentials`, imported only on those
paths so the common path never pays for importing boto3.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import URL, make_url

from lambda_app.core.settings import Settings


class DatabaseNotConfigured(RuntimeError):
    pass


@dataclass(frozen=True)
class ConnectionPlan:
    url: URL
    connect_args: dict[str, Any] = field(default_factory=dict)
    # An async callable returning a raw asyncpg connection (AWS sources), or None.
    async_creator: Callable[[], Awaitable[Any]] | None = None


def normalize_url(raw: str) -> URL:
    """Accept postgres://, postgresql:// and postgresql+asyncpg:// URLs."""
    url = make_url(raw)
    if url.drivername in ("postgres", "postgresql", "postgresql+asyncpg"):
        return url.set(drivername="postgresql+asyncpg")
    raise DatabaseNotConfigured(f"unsupported database URL scheme: {url.drivername!r}")


def plan_connection(settings: Settings, *, database_url: str | None = None) -> ConnectionPlan:
    if database_url is not None:
        return ConnectionPlan(url=normalize_url(database_url))
    if settings.database_url is not None:
        return ConnectionPlan(url=normalize_url(settings.database_url.get_secret_value()))
    if settings.db_iam_auth or settings.db_secret_arn:
        from lambda_app.core import aws_credentials  # boto3 only on this path

        return aws_credentials.plan_aws_connection(settings)
    raise DatabaseNotConfigured(
        "no database configured: set DATABASE_URL, or DB_HOST/DB_NAME/DB_USER with "
        "DB_IAM_AUTH=true, or DB_SECRET_ARN"
    )
