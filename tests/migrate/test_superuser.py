import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.identity.passwords import verify_password
from lambda_app.migrate.settings import MigrationSettings
from lambda_app.migrate.superuser import ensure_superuser, superuser_spec
from lambda_app.models import User


def settings(**values: object) -> MigrationSettings:
    return MigrationSettings(_env_file=None, **values)  # type: ignore[arg-type, call-arg]


async def test_configured_superuser_is_created_once(session: AsyncSession) -> None:
    spec = superuser_spec(
        settings(
            first_superuser_username="root_admin",
            first_superuser_email="Root@Example.com",
            first_superuser_password="a-strong-password",
        ),
        allow_local_default=False,
    )
    assert spec is not None
    first = await ensure_superuser(session, spec)
    second = await ensure_superuser(session, spec)
    assert (first.created, first.generated_password) == (True, None)
    assert second.created is False
    users = (await session.scalars(select(User).where(User.username == "root_admin"))).all()
    assert len(users) == 1 and users[0].is_superuser and users[0].email == "root@example.com"
    assert users[0].email_verified  # its operator chose the address: nothing to verify
    assert verify_password("a-strong-password", users[0].hashed_password)[0]


async def test_local_default_generates_a_password(session: AsyncSession) -> None:
    spec = superuser_spec(settings(environment="local"), allow_local_default=True)
    assert spec is not None and spec.password is None
    # given: no `admin` yet (the test database is fresh and every test rolls back)
    assert await session.scalar(select(User).where(User.username == spec.username)) is None
    result = await ensure_superuser(session, spec)
    assert result.created
    assert result.generated_password and len(result.generated_password) >= 20
    user = await session.scalar(select(User).where(User.username == spec.username))
    assert user is not None and user.is_superuser
    assert verify_password(result.generated_password, user.hashed_password)[0]


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_no_default_superuser_outside_local(environment: str) -> None:
    config = settings(environment=environment, jwt_secret="x" * 40)
    assert superuser_spec(config, allow_local_default=True) is None


def test_nothing_to_create_without_configuration() -> None:
    assert superuser_spec(settings(), allow_local_default=False) is None
