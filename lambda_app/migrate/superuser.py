"""Making sure the first superuser exists (after migrations, and from the CLI)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.migrate.settings import MigrationSettings
from lambda_app.users import service
from lambda_app.users.repository import UserRepository
from lambda_app.users.schemas import UserCreate

LOCAL_DEFAULT_USERNAME = "admin"
LOCAL_DEFAULT_EMAIL = "admin@example.com"


@dataclass(frozen=True)
class SuperuserSpec:
    username: str
    email: str
    password: str | None  # None: generate one (local development only)


@dataclass(frozen=True)
class EnsureResult:
    created: bool
    username: str
    generated_password: str | None = None


def superuser_spec(
    settings: MigrationSettings, *, allow_local_default: bool
) -> SuperuserSpec | None:
    """The configured first superuser, or None when there is nothing to create."""
    password: str | None = None
    username, email = settings.first_superuser_username, settings.first_superuser_email
    if settings.first_superuser_secret_arn:
        import json

        from lambda_app.core import aws

        data = json.loads(aws.fetch_secret_string(settings.first_superuser_secret_arn))
        username = data.get("username", username)
        email = data.get("email", email)
        password = data["password"]
    elif settings.first_superuser_password is not None:
        password = settings.first_superuser_password.get_secret_value()
    if username and email:
        return SuperuserSpec(username=username, email=email, password=password)
    if allow_local_default and settings.is_local:
        return SuperuserSpec(LOCAL_DEFAULT_USERNAME, LOCAL_DEFAULT_EMAIL, password)
    return None


async def ensure_superuser(session: AsyncSession, spec: SuperuserSpec) -> EnsureResult:
    """Create the superuser unless a user with that username already exists. Flushes only."""
    if await UserRepository(session).get_by_login(spec.username) is not None:
        return EnsureResult(created=False, username=spec.username)
    generated = None
    password = spec.password
    if password is None:
        password = generated = secrets.token_urlsafe(18)
    data = UserCreate(username=spec.username, email=spec.email, password=password)
    await service.register(session, data, is_superuser=True)
    return EnsureResult(created=True, username=spec.username, generated_password=generated)
