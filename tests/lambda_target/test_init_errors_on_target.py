"""A function that cannot start, on the target: what Lambda hears (`init/error`) and logs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.lambda_target.bundles import Target
from tests.lambda_target.function_process import FunctionConfig, running_function

pytestmark = pytest.mark.slow

INIT_TIMEOUT_S = 180.0
# Too short outside local development: the app must refuse it, without printing it.
SHORT_JWT_SECRET = "short-jwt-secret-value"
SUPERUSER_PASSWORD = "super-secret-pw"


@pytest.mark.parametrize(
    ("handler", "leave_out", "message"),
    [
        pytest.param(
            "lambda_app.handlers.no_such_module.handler",
            (),
            "Unable to import module 'lambda_app.handlers.no_such_module': "
            "No module named 'lambda_app.handlers.no_such_module'",
            id="handler-module-not-in-bundle",
        ),
        pytest.param(
            None,
            ("mangum", "mangum-*.dist-info"),
            "Unable to import module 'lambda_app.handlers.api': No module named 'mangum'",
            id="dependency-left-out-of-bundle",
        ),
    ],
)
def test_an_import_error_at_init_is_reported_with_the_module_name(
    target: Target,
    api_function: FunctionConfig,
    api_database_url_for_tests: str,
    logs: Path,
    handler: str | None,
    leave_out: tuple[str, ...],
    message: str,
) -> None:
    # given: the API bundle (or a copy missing a dependency) and a handler to import
    bundle = target.bundle("api")
    if leave_out:
        bundle = target.copy_of("api", f"api-without-{leave_out[0]}", leave_out=leave_out)
    config = api_function.with_environment(DATABASE_URL=api_database_url_for_tests)
    if handler:
        config = dataclasses.replace(config, handler=handler)

    # when: the runtime client starts and imports the handler
    with running_function(bundle, target.runtime, config, logs=logs) as function:
        error = function.wait_init_error(timeout_s=INIT_TIMEOUT_S)
        exit_code = function.wait_exit(timeout_s=30)

    # then: Lambda hears an ImportModuleError naming the module, and init never finished
    assert error.error_type == "Runtime.ImportModuleError"
    assert error.json()["errorType"] == "Runtime.ImportModuleError"
    assert error.json()["errorMessage"] == message
    assert function.api.first_poll_at is None
    assert exit_code != 0
    assert message in function.stdout


def test_refused_settings_at_init_name_the_variable_and_print_no_secret(
    target: Target, api_function: FunctionConfig, api_database_url_for_tests: str, logs: Path
) -> None:
    # given: a deployed stage's function with a JWT secret the app must refuse, and a
    # superuser password in its environment
    config = api_function.with_environment(
        ENVIRONMENT="dev",
        JWT_SECRET=SHORT_JWT_SECRET,
        FIRST_SUPERUSER_PASSWORD=SUPERUSER_PASSWORD,
        DATABASE_URL=api_database_url_for_tests,
    )

    # when: the container starts (importing the handler builds the app, which reads them)
    with running_function(target.bundle("api"), target.runtime, config, logs=logs) as function:
        error = function.wait_init_error(timeout_s=INIT_TIMEOUT_S)
        exit_code = function.wait_exit(timeout_s=30)

    # then: the init error Lambda records names the setting...
    assert exit_code != 0
    assert "JWT_SECRET" in error.json()["errorMessage"], error.body.decode()
    # ...and neither the error nor anything the process printed holds a secret value
    everything_said = error.body.decode() + function.stdout + function.stderr
    assert SHORT_JWT_SECRET not in everything_said
    assert SUPERUSER_PASSWORD not in everything_said
