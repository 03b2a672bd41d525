"""A container that can't start says which setting is wrong, never what it holds."""

from __future__ import annotations

import os
import subprocess
import sys

JWT_SECRET = "short-jwt-secret-value"  # too short outside local development
SUPERUSER_PASSWORD = "super-secret-pw"


def test_refused_settings_at_import_name_the_variable_not_the_values() -> None:
    # given: a fresh interpreter, like a new container, with a JWT secret the app refuses
    env = os.environ | {
        "ENVIRONMENT": "dev",
        "JWT_SECRET": JWT_SECRET,
        "FIRST_SUPERUSER_PASSWORD": SUPERUSER_PASSWORD,
    }
    env.pop("JWT_SECRET_ARN", None)

    # when: it imports the entry point, which builds the app, which reads the settings
    result = subprocess.run(
        [sys.executable, "-c", "import lambda_app.handlers.api"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )

    # then: the init error names JWT_SECRET and prints no value, and no chained cause
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "SettingsError: invalid settings: JWT_SECRET: JWT secret is" in result.stderr
    assert JWT_SECRET not in output
    assert SUPERUSER_PASSWORD not in output
    assert "input_value" not in output
    assert "During handling of the above exception" not in output
