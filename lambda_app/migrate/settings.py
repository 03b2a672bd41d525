"""The migration function's settings: the database, and the first superuser it creates."""

from __future__ import annotations

from functools import lru_cache
from typing import TypeVar

from pydantic import SecretStr

from lambda_app.core.settings import DatabaseSettings, PasswordHashSettings, load_settings
from lambda_app.migrate.actions import LAMBDA_MAX_RUN_SECONDS

AnyDatabaseSettings = TypeVar("AnyDatabaseSettings", bound=DatabaseSettings)

# A migration (an index build, a backfill) may run for minutes, far beyond the API's
# per-statement timeout: the function's own timeout is the real bound.
MIGRATION_COMMAND_TIMEOUT_SECONDS = float(LAMBDA_MAX_RUN_SECONDS)


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


def migration_settings(settings: AnyDatabaseSettings) -> AnyDatabaseSettings:
    """The same database settings (same credential sources), with a statement timeout sized
    for DDL and an application name that tells the migration's sessions apart."""
    return settings.model_copy(
        update={
            "db_command_timeout_seconds": MIGRATION_COMMAND_TIMEOUT_SECONDS,
            "db_application_name": f"{settings.db_application_name}.migrate",
        }
    )
