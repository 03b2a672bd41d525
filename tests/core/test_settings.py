import traceback
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from lambda_app.core.settings import (
    LOCAL_DEV_JWT_SECRET,
    ApiSettings,
    SettingsError,
    get_settings,
)
from lambda_app.core.settings_loading import SettingProblem


@pytest.mark.parametrize("environment", ["dev", "prod"])
@pytest.mark.parametrize("secret", ["", LOCAL_DEV_JWT_SECRET, "too-short"])
def test_refuses_unsafe_jwt_secret_outside_local(environment: str, secret: str) -> None:
    with pytest.raises(ValidationError, match="JWT secret"):
        ApiSettings(environment=environment, jwt_secret=secret, _env_file=None)  # type: ignore[arg-type, call-arg]


def test_refuses_default_jwt_secret_outside_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JWT_SECRET", raising=False)
    with pytest.raises(ValidationError):
        ApiSettings(environment="prod", _env_file=None)  # type: ignore[arg-type, call-arg]


def test_accepts_a_strong_secret_in_prod() -> None:
    settings = ApiSettings(environment="prod", jwt_secret="x" * 48, _env_file=None)  # type: ignore[arg-type, call-arg]
    assert settings.environment == "prod"


def test_any_stage_name_the_infrastructure_passes_is_a_stage() -> None:
    # Adding a stage is one StageConfig: the app takes its name as it comes.
    settings = ApiSettings(environment="staging", jwt_secret="x" * 48, _env_file=None)  # type: ignore[arg-type, call-arg]
    assert settings.environment == "staging" and not settings.is_local
    with pytest.raises(ValidationError, match="JWT secret"):
        ApiSettings(environment="staging", jwt_secret="too-short", _env_file=None)  # type: ignore[arg-type, call-arg]


def test_a_stage_name_is_a_plain_identifier() -> None:
    with pytest.raises(ValidationError):
        ApiSettings(environment="Prod Stage!", jwt_secret="x" * 48, _env_file=None)  # type: ignore[arg-type, call-arg]


def test_local_development_works_with_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JWT_SECRET", raising=False)
    settings = ApiSettings(environment="local", _env_file=None)  # type: ignore[arg-type, call-arg]
    assert settings.jwt_secret.get_secret_value() == LOCAL_DEV_JWT_SECRET


def test_secrets_stay_out_of_repr() -> None:
    settings = ApiSettings(
        environment="prod",
        jwt_secret="s" * 40,
        database_url="postgresql://u:hunter2@h/db",
        _env_file=None,  # type: ignore[arg-type, call-arg]
    )
    text = repr(settings) + str(settings.model_dump())
    assert "hunter2" not in text and "s" * 40 not in text


def test_reads_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCESS_TOKEN_EXPIRE_MINUTES", "5")
    monkeypatch.setenv("SQL_ECHO", "true")
    settings = ApiSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.access_token_expire_minutes == 5 and settings.sql_echo is True


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """`get_settings()` reads the environment again, and the next test's settings too."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def refused(monkeypatch: pytest.MonkeyPatch, **environment: str) -> tuple[SettingsError, str]:
    """The error `get_settings()` raises with these variables, and what Python prints for it
    (causes included, as in Lambda's init error)."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        get_settings()
    return raised.value, "".join(traceback.format_exception(raised.value))


def test_a_field_error_names_the_variable_not_the_values(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    error, printed = refused(
        monkeypatch, DB_PORT="notanumber", FIRST_SUPERUSER_PASSWORD="super-secret-pw"
    )

    message = "Input should be a valid integer, unable to parse string as an integer"
    assert f"invalid settings: DB_PORT: {message}" in printed
    assert "notanumber" not in printed and "super-secret-pw" not in printed
    assert "input_value" not in printed
    assert error.problems == (SettingProblem("DB_PORT", message),)


def test_an_unsafe_jwt_secret_is_named_as_jwt_secret(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    # The check runs on the whole model: pydantic's error for it names no field.
    error, printed = refused(
        monkeypatch,
        ENVIRONMENT="dev",
        JWT_SECRET="short-jwt-secret-value",
        FIRST_SUPERUSER_PASSWORD="super-secret-pw",
    )

    assert "invalid settings: JWT_SECRET: JWT secret is missing" in printed
    assert "short-jwt-secret-value" not in printed and "super-secret-pw" not in printed
    assert "input_value" not in printed
    (problem,) = error.problems
    assert problem.variable == "JWT_SECRET"
    assert problem.message.startswith("JWT secret is missing, the local default, or shorter")


def test_the_body_limit_is_at_most_what_lambda_can_receive(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    # A synchronous invocation carries at most 6 MB: a higher limit could never be reached.
    error, _ = refused(monkeypatch, MAX_REQUEST_BODY_BYTES=str(6 * 1024 * 1024 + 1))

    assert error.problems[0].variable == "MAX_REQUEST_BODY_BYTES"
    monkeypatch.setenv("MAX_REQUEST_BODY_BYTES", str(6 * 1024 * 1024))
    get_settings.cache_clear()
    assert get_settings().max_request_body_bytes == 6 * 1024 * 1024


def test_the_log_level_must_be_one_logging_knows(
    monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    error, printed = refused(monkeypatch, LOG_LEVEL="verbose")

    assert "invalid settings: LOG_LEVEL: unknown log level; expected one of" in printed
    assert error.problems[0].variable == "LOG_LEVEL"
    # Any case, as before.
    monkeypatch.setenv("LOG_LEVEL", "debug")
    get_settings.cache_clear()
    assert get_settings().log_level == "DEBUG"
