import pytest
from pydantic import ValidationError

from lambda_app.core.settings import LOCAL_DEV_JWT_SECRET, Environment, Settings


@pytest.mark.parametrize("environment", ["dev", "prod"])
@pytest.mark.parametrize("secret", ["", LOCAL_DEV_JWT_SECRET, "too-short"])
def test_refuses_unsafe_jwt_secret_outside_local(environment: str, secret: str) -> None:
    with pytest.raises(ValidationError, match="JWT secret"):
        Settings(environment=environment, jwt_secret=secret, _env_file=None)  # type: ignore[arg-type, call-arg]


def test_refuses_default_jwt_secret_outside_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JWT_SECRET", raising=False)
    with pytest.raises(ValidationError):
        Settings(environment="prod", _env_file=None)  # type: ignore[arg-type, call-arg]


def test_accepts_a_strong_secret_in_prod() -> None:
    settings = Settings(environment="prod", jwt_secret="x" * 48, _env_file=None)  # type: ignore[arg-type, call-arg]
    assert settings.environment is Environment.PROD


def test_local_development_works_with_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JWT_SECRET", raising=False)
    settings = Settings(environment="local", _env_file=None)  # type: ignore[arg-type, call-arg]
    assert settings.jwt_secret.get_secret_value() == LOCAL_DEV_JWT_SECRET


def test_secrets_stay_out_of_repr() -> None:
    settings = Settings(
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
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.access_token_expire_minutes == 5 and settings.sql_echo is True
