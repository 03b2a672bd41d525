"""Init (what SnapStart snapshots) touches no network and makes nothing unique.

A connection or a fetched secret made at init would be frozen into the snapshot
and shared, stale, by every restored container; a token signed at init would be the
same in all of them. So the import that Lambda runs as init opens no socket, fetches
no secret and signs nothing: proven in a fresh interpreter where all three fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Run in the child: every socket operation and every JWT signature raises.
FORBID_AND_INIT = """
import sys

def forbid(event, args):
    if event.startswith("socket.") and event != "socket.__new__":
        raise RuntimeError(f"network at init: {event} {args!r}")
sys.addaudithook(forbid)

import jwt
def no_signing(*args, **kwargs):
    raise RuntimeError("a token signed at init")
jwt.encode = no_signing

from lambda_app.handlers import api
from lambda_app.db import engine as db, statement_names

assert callable(api.handler)
assert db._engine is None, "an engine was built at init"
assert statement_names._token is None, "a statement-name token was made at init"
print("init ok")
"""

# The deployed API's configuration (see infra_cdk/stack.py): IAM database logins
# through the proxy and the JWT key in Secrets Manager, both only on first use.
PROD_ENVIRONMENT = {
    "ENVIRONMENT": "prod",
    "LOG_LEVEL": "INFO",
    "DB_HOST": "proxy.proxy-abc.eu-west-1.rds.amazonaws.com",
    "DB_PORT": "5432",
    "DB_NAME": "lambda_app",
    "DB_USER": "lambda_app_api",
    "DB_IAM_AUTH": "true",
    "DB_SSL": "verify-full",
    "JWT_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:jwt-AbCdEf",
    "AWS_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
}


def test_init_opens_no_socket_fetches_no_secret_and_signs_nothing() -> None:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "DB_", "DATABASE_", "JWT_", "FIRST_SUPERUSER_"))
    }
    result = subprocess.run(
        [sys.executable, "-c", FORBID_AND_INIT],
        cwd=ROOT,
        env={**environment, **PROD_ENVIRONMENT},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip().endswith("init ok")
