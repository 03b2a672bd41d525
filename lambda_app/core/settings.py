"""Settings, read once per process from the environment (and `.env`).

Each function validates only what it uses: `ApiSettings` here for the API, and
`lambda_app.migrate.settings.MigrationSettings` for the migration function; both build
on `DatabaseSettings`. Secrets are `SecretStr`, so they never end up in a repr or a
log line; on AWS they come from Secrets Manager (`JWT_SECRET_ARN`, `DB_SECRET_ARN`,
`FIRST_SUPERUSER_SECRET_ARN`), never from plain environment variables.

Refused settings raise `SettingsError` (`load_settings`): it names each variable and
what is wrong with it, never a value.
"""

from __future__ import annotations

import logging
import re
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import EmailStr, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from lambda_app import workload
from lambda_app.core.origins import ANY_ORIGIN, parse_origins
from lambda_app.core.settings_loading import Refused
from lambda_app.core.settings_loading import SettingsError as SettingsError  # re-exported
from lambda_app.core.settings_loading import load_settings as load_settings  # re-exported

# A value that only exists so `make run` works out of the box. Outside local
# development the app refuses to start with it (see `_refuse_unsafe_secrets`).
LOCAL_DEV_JWT_SECRET = "local-development-only-jwt-secret-change-me"  # noqa: S105
MIN_JWT_SECRET_LENGTH = 32


LOCAL = "local"
# What API Gateway accepts as an API mapping key (several levels for an HTTP API).
_MAPPING_KEY = re.compile(r"[A-Za-z0-9$\-_.+!*'()]+(/[A-Za-z0-9$\-_.+!*'()]+)*")


class DbSslMode(StrEnum):
    DISABLE = "disable"
    REQUIRE = "require"  # encrypted, certificate not verified
    VERIFY_FULL = "verify-full"  # encrypted, verified against the bundled RDS CA


class BaseAppSettings(BaseSettings):
    """What every function reads: its stage and its log level."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # The stage name the infrastructure passes (StageConfig.name); `local` is development.
    environment: str = Field(default=LOCAL, pattern=r"^[a-z][a-z0-9-]{0,31}$")
    log_level: str = "INFO"

    @property
    def is_local(self) -> bool:
        return self.environment == LOCAL

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, level: str) -> str:
        # Checked here rather than failing later in logging.setLevel, whose error names
        # neither the variable nor the levels it accepts.
        known = logging.getLevelNamesMapping()
        if level.upper() not in known:
            raise ValueError(f"unknown log level; expected one of {', '.join(known)}")
        return level.upper()


class DatabaseSettings(BaseAppSettings):
    """Where the database is and how to reach it: exactly one source (`lambda_app.db.sources`)."""

    sql_echo: bool = False
    # (a) a full URL: postgresql+asyncpg://user:password@host:5432/name
    database_url: SecretStr | None = None
    # (b) RDS IAM authentication (db_iam_auth=true) or (c) a Secrets Manager secret
    db_host: str | None = None
    db_port: int = 5432
    db_name: str | None = None
    db_user: str | None = None
    db_iam_auth: bool = False
    db_secret_arn: str | None = None
    db_secret_ttl_seconds: int = Field(default=300, ge=0)
    db_ssl: DbSslMode | None = None  # default: verify-full on AWS sources, as in the URL otherwise
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    db_command_timeout_seconds: float = Field(default=10.0, gt=0)
    db_application_name: str = workload.NAME


class PasswordHashSettings(BaseSettings):
    """Argon2id's cost. Defaults: OWASP's recommended minimum (19 MiB, t=2, p=1), sized for
    a Lambda vCPU. Raising them is safe: old hashes are upgraded at the next login."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    password_hash_memory_kib: int = Field(default=19_456, ge=8_192)
    password_hash_time_cost: int = Field(default=2, ge=1)
    password_hash_parallelism: int = Field(default=1, ge=1)


# --- mail (lambda_app.mail) ---------------------------------------------------------------
class EmailBackend(StrEnum):
    FILE = "file"  # local development: one .eml file per message under MAIL_DIR
    SES = "ses"  # on AWS: Amazon SES, from EMAIL_FROM


LOCAL_FRONTEND_URL = "http://localhost:3000"


class MailSettings(BaseAppSettings):
    """How mail leaves and where its links point. Unset EMAIL_BACKEND means `file`
    locally and no mail at all elsewhere (sending raises `MailNotConfigured`): the stack
    sets `ses` only when it was deployed with an identity (`-c email_from=...`)."""

    email_backend: EmailBackend | None = None
    email_from: EmailStr | None = None
    # Links in messages point at the frontend: {FRONTEND_URL}/reset-password?token=...
    frontend_url: str | None = None
    mail_dir: Path = Path(".local/mail")

    @property
    def mail_backend(self) -> EmailBackend | None:
        return self.email_backend or (EmailBackend.FILE if self.is_local else None)

    @property
    def mail_frontend_url(self) -> str | None:
        return self.frontend_url or (LOCAL_FRONTEND_URL if self.is_local else None)

    @field_validator("frontend_url")
    @classmethod
    def _origin_and_path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("not an http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("a base URL takes no query string or fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _mail_fits_the_stage(self) -> Self:
        if self.email_backend is EmailBackend.SES and self.email_from is None:
            raise Refused("email_from", "required with EMAIL_BACKEND=ses")
        if self.is_local:
            return self
        if self.email_backend is EmailBackend.FILE:
            # The code folder is read-only on Lambda, and nobody would read the files.
            raise Refused("email_backend", "the file backend is for local development: use ses")
        if self.email_backend is EmailBackend.SES and self.frontend_url is None:
            raise Refused("frontend_url", "required with EMAIL_BACKEND=ses")
        if self.frontend_url is not None and not self.frontend_url.startswith("https://"):
            raise Refused("frontend_url", "links outside local development must use https")
        return self


# --- CORS (lambda_app.core.cors) ---------------------------------------------------------
class CorsSettings(BaseAppSettings):
    """Which browser origins may call the API (docs/api.md, "Browser clients (CORS)")."""

    # Exact origins, comma-separated (`https://app.example.com,http://localhost:5173`); not
    # JSON, hence NoDecode. Empty: no CORS middleware, no CORS headers. `*` only locally.
    cors_allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("cors_allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> tuple[str, ...]:
        return parse_origins(value)

    @model_validator(mode="after")
    def _no_wildcard_outside_local(self) -> Self:
        if ANY_ORIGIN in self.cors_allowed_origins and not self.is_local:
            raise Refused(
                "cors_allowed_origins",
                f"'*' (any origin) is for local development only: list the origins "
                f"(ENVIRONMENT={self.environment})",
            )
        return self


class ApiSettings(DatabaseSettings, PasswordHashSettings, MailSettings, CorsSettings):
    """The API function's settings."""

    jwt_secret: SecretStr = SecretStr(LOCAL_DEV_JWT_SECRET)
    jwt_secret_arn: str | None = None
    # --- signing keys (lambda_app/identity/signing_key.py) ---
    # How long a process keeps the fetched keys: it signs with a rotated key within this
    # long (and accepts the previous key throughout). 0: fetched for every token.
    jwt_secret_ttl_seconds: int = Field(default=300, ge=0)
    # Short: an access token can't be revoked before it expires (unless the password
    # changes); the refresh token (lambda_app/identity/sessions.py) keeps the session.
    access_token_expire_minutes: int = Field(default=15, ge=1, le=24 * 60)
    refresh_token_expire_days: int = Field(default=30, ge=1, le=365)
    # However often a session refreshes, it ends this long after its login: the user
    # logs in again (OWASP ASVS asks for re-authentication within 30 days at level 2).
    session_max_days: int = Field(default=90, ge=1, le=3650)
    login_max_failures: int = Field(default=10, ge=1)
    login_failure_window_seconds: int = Field(default=900, ge=1)
    # At most what a synchronous Lambda invocation can carry: no larger body ever arrives.
    max_request_body_bytes: int = Field(default=64 * 1024, ge=1024, le=6 * 1024 * 1024)
    # --- account emails (lambda_app/identity/account_emails.py) ---
    # When true, logging in needs a verified email (403 `email_not_verified`).
    require_verified_email: bool = False
    password_reset_expire_minutes: int = Field(default=30, ge=5, le=24 * 60)
    email_verification_expire_hours: int = Field(default=24, ge=1, le=30 * 24)
    # Per address and purpose (reset, verification), in the hour from the first request;
    # past it nothing is sent.
    account_emails_per_hour: int = Field(default=3, ge=1, le=100)
    # Password recovery answers no sooner than this, so that sending a mail (an existing
    # account) takes no longer, to the caller, than sending none (docs/api.md).
    password_recovery_min_seconds: float = Field(default=0.5, ge=0, le=5)
    # The API mapping key of the custom domain (`v1` for https://api.example.com/v1/):
    # HTTP API events keep it in the path without saying which part it is.
    api_base_path: str | None = None
    db_pool: Literal["null", "single"] = "null"  # the request engine's (lambda_app/db/engine.py)

    @field_validator("api_base_path")
    @classmethod
    def _mapping_key(cls, value: str | None) -> str | None:
        key = (value or "").strip("/")
        # (a `.` or `..` segment would be resolved away by the client before it is sent)
        if key and (
            not _MAPPING_KEY.fullmatch(key) or any(not s.strip(".") for s in key.split("/"))
        ):
            raise ValueError("not an API mapping key: letters, digits, $-_.+!*'() and inner '/'")
        return key or None

    @model_validator(mode="after")
    def _verification_needs_mail(self) -> Self:
        if self.require_verified_email and self.mail_backend is None:
            raise Refused(
                "require_verified_email",
                "needs a mail backend (EMAIL_BACKEND=ses): nobody could ever verify",
            )
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_secrets(self) -> Self:
        if self.is_local or self.jwt_secret_arn:
            # With an ARN the real secret is fetched (and checked) at first use.
            return self
        try:
            check_jwt_secret(self.jwt_secret.get_secret_value(), self.environment)
        except ValueError as exc:
            raise Refused("jwt_secret", str(exc)) from None
        return self


def check_jwt_secret(secret: str, environment: str) -> None:
    """Fail fast on a JWT secret that would let anyone forge tokens."""
    if environment == LOCAL:
        return
    if not secret or secret == LOCAL_DEV_JWT_SECRET or len(secret) < MIN_JWT_SECRET_LENGTH:
        raise ValueError(
            f"JWT secret is missing, the local default, or shorter than {MIN_JWT_SECRET_LENGTH} "
            f"characters: refusing to run with ENVIRONMENT={environment}"
        )


@lru_cache(maxsize=1)
def get_settings() -> ApiSettings:
    """The API function's settings, read once per process."""
    return load_settings(ApiSettings)
