"""The migration function's settings: the database, and the first superuser it creates."""

from __future__ import annotations

from functools import lru_cache
from typing import TypeVar

from pydantic import SecretStr

from lambda_app.core.settings import DatabaseSettings, PasswordHashSettings, load_settings
from lambda_app.migrate.deadline import DEFAULT_RUN_SECONDS, Deadline

AnyDatabaseSettings = TypeVar("AnyDatabaseSettings", bound=DatabaseSettings)


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


def migration_settings(
    settings: AnyDatabaseSettings, *, deadline: Deadline | None = None
) -> AnyDatabaseSettings:
    """The same database settings (same credential sources), with client-side timeouts
    that end by the deadline (default: a run's budget on Lambda) and an application name
    that tells the migration's sessions apart.

    A migration (an index build, a backfill) may run for minutes, far beyond the API's
    per-statement timeout. PostgreSQL's own bounds (`timeouts`) fire first; asyncpg's
    command timeout is the client's backstop for a server that does not answer. The
    caller has checked that the deadline is still ahead (`Deadline.check`)."""
    left = deadline.seconds_left() if deadline else DEFAULT_RUN_SECONDS
    return settings.model_copy(
        update={
            "db_connect_timeout_seconds": min(settings.db_connect_timeout_seconds, left),
            "db_command_timeout_seconds": left,
            "db_application_name": f"{settings.db_application_name}.migrate",
        }
    )
