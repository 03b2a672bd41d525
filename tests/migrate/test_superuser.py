import logging

import httpx
import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.identity.passwords import verify_password
from lambda_app.migrate.settings import MigrationSettings
from lambda_app.migrate.superuser import SuperuserSpec, ensure_superuser, superuser_spec
from lambda_app.models import User
from tests.fixtures.accounts import DEFAULT_PASSWORD, login
from tests.fixtures.factories import UserFactory


def settings(**values: object) -> MigrationSettings:
    return MigrationSettings(_env_file=None, **values)  # type: ignore[arg-type, call-arg]


@pytest.fixture
async def no_superuser(session: AsyncSession) -> None:
    """No superuser in the database, for the first one to be created: those other tests
    committed are demoted inside this test's transaction, which is rolled back."""
    await session.execute(update(User).values(is_superuser=False))


@pytest.mark.usefixtures("no_superuser")
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


@pytest.mark.usefixtures("no_superuser")
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


async def user_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(User)) or 0)


@pytest.mark.usefixtures("no_superuser")
async def test_a_superuser_that_renamed_itself_is_not_created_again(
    client: httpx.AsyncClient, session: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    # given: the first release created it, and it renamed itself through the API
    spec = SuperuserSpec(username="root", email="root@example.com", password=DEFAULT_PASSWORD)
    assert (await ensure_superuser(session, spec)).created
    renamed = await client.patch(
        "/api/users/me", json={"username": "boss"}, headers=await login(client, "root")
    )
    assert renamed.status_code == 200, renamed.text
    before = await user_count(session)

    # when: a later release runs the step again
    with caplog.at_level(logging.INFO, logger="lambda_app.migrate"):
        result = await ensure_superuser(session, spec)

    # then: nothing created, nothing failed, and one line says why, without the email
    assert (result.created, result.skipped) == (False, "email already in use")
    assert await user_count(session) == before
    (line,) = [r for r in caplog.records if r.getMessage() == "first superuser not created"]
    assert "root@example.com" not in str(line.__dict__) and DEFAULT_PASSWORD not in str(
        line.__dict__
    )


@pytest.mark.parametrize(
    ("holder", "in_use"),
    [
        pytest.param({"username": "root", "email": "x@example.com"}, "username", id="username"),
        # `Root` is another username, but the slug is `root` too
        pytest.param({"username": "Root", "email": "x@example.com"}, "username", id="slug"),
        pytest.param({"username": "x", "email": "ROOT@example.com"}, "email", id="email"),
    ],
)
@pytest.mark.usefixtures("no_superuser")
async def test_a_user_holding_the_superusers_name_or_email_is_left_alone(
    session: AsyncSession, user_factory: UserFactory, holder: dict[str, str], in_use: str
) -> None:
    # given: someone else signed up first with the configured name (or its slug) or email
    other = await user_factory(**holder)
    before = await user_count(session)
    spec = SuperuserSpec(username="root", email="root@example.com", password=DEFAULT_PASSWORD)

    # when
    result = await ensure_superuser(session, spec)

    # then: the release goes on, and that account is neither replaced nor promoted
    assert (result.created, result.skipped) == (False, f"{in_use} already in use")
    assert await user_count(session) == before
    await session.refresh(other)
    assert not other.is_superuser


@pytest.mark.usefixtures("no_superuser")
async def test_a_deleted_first_superuser_is_not_created_again_while_another_superuser_exists(
    session: AsyncSession, user_factory: UserFactory
) -> None:
    # given: the first release created it, another superuser was made since, and the first
    # one was deleted (off-boarded, its secret leaked)
    spec = SuperuserSpec(username="root", email="root@example.com", password=DEFAULT_PASSWORD)
    assert (await ensure_superuser(session, spec)).created
    await user_factory(username="second_admin", is_superuser=True)
    await session.execute(delete(User).where(User.username == "root"))

    # when: a later release runs the step again, with the same settings
    result = await ensure_superuser(session, spec)

    # then: the settings only bootstrap the first superuser; nothing comes back
    assert (result.created, result.skipped) == (False, "another superuser exists")
    assert await session.scalar(select(User).where(User.username == "root")) is None


@pytest.mark.usefixtures("no_superuser")
async def test_the_first_superuser_is_created_while_no_superuser_exists(
    session: AsyncSession, user_factory: UserFactory
) -> None:
    # given: users, none of them a superuser (the last one was deleted by hand)
    await user_factory(username="regular")
    spec = SuperuserSpec(username="root", email="root@example.com", password=DEFAULT_PASSWORD)

    # when
    result = await ensure_superuser(session, spec)

    # then
    assert result.created
    root = await session.scalar(select(User).where(User.username == "root"))
    assert root is not None and root.is_superuser


async def test_a_superuser_asked_for_by_hand_is_created_beside_the_others(
    session: AsyncSession, superuser: User
) -> None:
    # `create-superuser` asks for one more superuser, not for the first one
    spec = SuperuserSpec(username="root", email="root@example.com", password=DEFAULT_PASSWORD)

    result = await ensure_superuser(session, spec, first_only=False)

    assert result.created
