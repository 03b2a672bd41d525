"""The migration function's settings: the database, and the first superuser it creates."""

from __future__ import annotations

from functools import lru_cache

from pydantic import SecretStr

from lambda_app.core.settings import DatabaseSettings, PasswordHashSettings, load_settings


class MigrationSettings(DatabaseSettings, PasswordHashSettings):
    # The first superuser, created after the migrations when configured: from these
    # variables locally, from a Secrets Manager secret on AWS.
    first_superuser_username: str | None = None
    first_superuser_email: str | None = None
    first_superuser_password: SecretStr | None = None
    first_superuser_secret_arn: str | None = None


@lru_cache(maxsize=1)
def get_migration_settings() -> MigrationSettings:
    return load_settings(MigrationSettings)
