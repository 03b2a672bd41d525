"""Where the database credentials come from: exactly one source, picked from the settings.

  (a) `DATABASE_URL`: a full URL, used as is;
  (b) `DB_HOST`/`DB_NAME`/`DB_USER` with `DB_IAM_AUTH=true`: RDS IAM auth tokens
      (`lambda_app.db.iam`), what the API uses through RDS Proxy;
  (c) `DB_SECRET_ARN`: a Secrets Manager secret in the RDS/CDK JSON format
      (`lambda_app.db.secret`), what the migration function uses.

TLS (`DB_SSL`): verify-full against the bundled RDS certificate authorities by
default on the AWS sources; with a URL, whatever the URL says unless `DB_SSL` is set
(its TLS context built once per engine, `lambda_app.db.tls.url_ssl_argument`).
"""

from __future__ import annotations

import time

from sqlalchemy.engine import URL, make_url

from lambda_app.core.aws import secret_fetcher
from lambda_app.core.settings import DatabaseSettings, DbSslMode
from lambda_app.db.iam import iam_connector
from lambda_app.db.plan import Clock, ConnectionPlan, DatabaseNotConfigured
from lambda_app.db.secret import CachedDbSecret, SecretConnector
from lambda_app.db.tls import ssl_argument, url_ssl_argument

# libpq's names in a URL, which asyncpg.connect() has no arguments for (normalize_url).
_LIBPQ_TLS_PARAMETERS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslpassword")


def normalize_url(raw: str) -> URL:
    """Accept postgres://, postgresql:// and postgresql+asyncpg:// URLs."""
    try:
        url = make_url(raw)
    except Exception:
        # The parser's message would quote the URL, password included.
        raise DatabaseNotConfigured("DATABASE_URL is not a valid database URL") from None
    if url.drivername not in ("postgres", "postgresql", "postgresql+asyncpg"):
        raise DatabaseNotConfigured(
            f"unsupported database URL scheme {url.drivername!r}: use postgresql:// "
            "(or postgres://, postgresql+asyncpg://)"
        )
    # SQLAlchemy hands every query parameter to asyncpg.connect() as an argument, and
    # these libpq ones it has not: each connection would fail with a TypeError.
    if libpq_only := [name for name in _LIBPQ_TLS_PARAMETERS if name in url.query]:
        raise DatabaseNotConfigured(
            f"DATABASE_URL: asyncpg takes no {', '.join(libpq_only)}: write ?ssl=<mode>,"
            " and name TLS files in PGSSLROOTCERT, PGSSLCERT, PGSSLKEY and PGSSLCRL"
        )
    return url.set(drivername="postgresql+asyncpg")


def _url_plan(url: URL) -> ConnectionPlan:
    """TLS as the URL says (`?ssl=require`), or asyncpg's default when it says nothing."""
    context = url_ssl_argument(url.query.get("ssl"))
    return ConnectionPlan(url=url, connect_args={} if context is None else {"ssl": context})


def plan_connection(
    settings: DatabaseSettings, *, database_url: str | None = None
) -> ConnectionPlan:
    if database_url is not None:
        return _url_plan(normalize_url(database_url))
    if settings.database_url is not None:
        url = normalize_url(settings.database_url.get_secret_value())
        if settings.db_ssl is None:
            return _url_plan(url)
        ssl = ssl_argument(settings.db_ssl, host=url.host)
        return ConnectionPlan(url=url, connect_args={"ssl": ssl})
    if settings.db_iam_auth or settings.db_secret_arn:
        return plan_aws_connection(settings)
    raise DatabaseNotConfigured(
        "no database configured: set DATABASE_URL, or DB_HOST/DB_NAME/DB_USER with "
        "DB_IAM_AUTH=true, or DB_SECRET_ARN"
    )


def plan_aws_connection(settings: DatabaseSettings, *, clock: Clock = time.time) -> ConnectionPlan:
    """A connection plan for IAM auth (b) or a Secrets Manager secret (c). No network call."""
    if settings.db_iam_auth and settings.db_secret_arn:
        raise DatabaseNotConfigured("set either DB_IAM_AUTH=true or DB_SECRET_ARN, not both")
    # The secret's host is known at the first connection only: then AWS_REGION decides.
    ssl = ssl_argument(settings.db_ssl or DbSslMode.VERIFY_FULL, host=settings.db_host)
    # For the dialect and for display only: the creator dials, and there's no password.
    url = URL.create(
        "postgresql+asyncpg",
        host=settings.db_host,
        port=settings.db_port if settings.db_host else None,
        database=settings.db_name,
    )
    if settings.db_iam_auth:
        connector = iam_connector(settings, clock=clock)
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
