"""The first superuser: created after an upgrade reaches head, when one is configured and
the database has no superuser yet."""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from lambda_app.core.settings import SettingsError
from lambda_app.migrate.deadline import Deadline
from lambda_app.migrate.settings import MigrationSettings
from lambda_app.migrate.timeouts import bound_session
from lambda_app.models import User
from lambda_app.users import service
from lambda_app.users.errors import EmailTaken, UsernameTaken
from lambda_app.users.repository import UserRepository
from lambda_app.users.schemas import UserCreate

logger = logging.getLogger(__name__)

LOCAL_DEFAULT_USERNAME = "admin"
LOCAL_DEFAULT_EMAIL = "admin@example.com"


@dataclass(frozen=True)
class SuperuserPolicy:
    """Which first superuser a caller may create."""

    # `admin` when none is configured, in local development only (`serve`).
    local_default: bool = False
    # A generated password must reach a person: only a caller that prints it (the CLI) may
    # have one generated. The migration function refuses rather than create an account no
    # one can log in to.
    generate_password: bool = False
    # Only while the database has no superuser at all: the settings bootstrap the first
    # one, and a superuser deleted since (off-boarded, its secret leaked) must not come
    # back, with the configured password, at the next release. `create-superuser` asks
    # for one more.
    first_only: bool = True


# The migration function's: the configured user only, with its configured password.
CONFIGURED_SUPERUSER = SuperuserPolicy()


@dataclass(frozen=True)
class SuperuserSpec:
    username: str
    email: str
    password: str | None  # None: generate one


@dataclass(frozen=True)
class SuperuserResult:
    username: str
    created: bool
    skipped: str | None = None  # why it was not created, when that is not "it exists"
    # Shown once by the CLI; never in the migration result or a log line.
    generated_password: str | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"username": self.username, "created": self.created}
        if self.skipped is not None:
            result["skipped"] = self.skipped
        return result


def superuser_spec(
    settings: MigrationSettings, *, allow_local_default: bool
) -> SuperuserSpec | None:
    """The configured first superuser, or None when there is nothing to create."""
    password: str | None = None
    username, email = settings.first_superuser_username, settings.first_superuser_email
    if settings.first_superuser_secret_arn:
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


async def ensure_superuser(
    session: AsyncSession, spec: SuperuserSpec, *, first_only: bool = True
) -> SuperuserResult:
    """Create the superuser unless a user already has its username or its email, or
    (`first_only`) any superuser exists. Flushes only.

    A user with either one counts as "it exists": the configured superuser may have
    renamed itself since (its email stays), or someone else may hold the name. Failing
    instead would fail every later release, over a user that is not the migration's
    business.

    No superuser can appear between the check and the insert: the caller holds the
    migration lock, so no other run creates one, and through the API only a superuser
    makes another."""
    repository = UserRepository(session)
    by_username = await repository.get_by_login(spec.username)
    by_email = await repository.get_by_email(spec.email)
    if by_username is not None and by_username is by_email:
        return SuperuserResult(username=spec.username, created=False)
    in_use = [
        field
        for field, holder in (("username", by_username), ("email", by_email))
        if holder is not None
    ]
    if in_use:
        return _not_created(spec, " and ".join(in_use) + " already in use")
    if first_only and await session.scalar(select(exists().where(User.is_superuser))):
        return _not_created(spec, "another superuser exists")
    generated = None
    password = spec.password
    if password is None:
        password = generated = secrets.token_urlsafe(18)
    data = UserCreate(username=spec.username, email=spec.email, password=password)
    try:
        # A savepoint: a violation must leave the caller's transaction usable.
        async with session.begin_nested():
            await service.register(session, data, is_superuser=True, email_verified=True)
    except UsernameTaken:  # its slug (case and `_`/`-` folded), or a sign-up just now
        return _not_created(spec, "username already in use")
    except EmailTaken:  # signed up just now
        return _not_created(spec, "email already in use")
    return SuperuserResult(username=spec.username, created=True, generated_password=generated)


def _not_created(spec: SuperuserSpec, skipped: str) -> SuperuserResult:
    """Not created, and why (another account holds its name, or another superuser exists).
    One line, with no email or password."""
    logger.info(
        "first superuser not created",
        extra={"fields": {"username": spec.username, "skipped": skipped}},
    )
    return SuperuserResult(username=spec.username, created=False, skipped=skipped)


async def ensure_first_superuser(
    engine: AsyncEngine,
    settings: MigrationSettings,
    policy: SuperuserPolicy,
    *,
    at_head: bool,
    deadline: Deadline,
) -> SuperuserResult | None:
    """The step after an upgrade: the configured superuser, committed; None if none is."""
    spec = superuser_spec(settings, allow_local_default=policy.local_default)
    if spec is None:
        return None
    if not at_head:
        # The ORM models describe the head schema; an older schema may not fit them.
        return SuperuserResult(spec.username, created=False, skipped="database not at head")
    if spec.password is None and not policy.generate_password:
        return SuperuserResult(
            spec.username,
            created=False,
            skipped="no password configured "
            "(FIRST_SUPERUSER_PASSWORD or FIRST_SUPERUSER_SECRET_ARN)",
        )
    async with engine.connect() as connection:
        await bound_session(connection, deadline)
        async with AsyncSession(connection, expire_on_commit=False) as session:
            try:
                result = await ensure_superuser(session, spec, first_only=policy.first_only)
            except ValidationError as exc:
                # The configured user is not a valid one: name the FIRST_SUPERUSER_* setting
                # (or that key of its secret) rather than print pydantic's text, the
                # password in it.
                raise SettingsError.from_validation_error(exc, prefix="FIRST_SUPERUSER_") from None
            await session.commit()
    return result
