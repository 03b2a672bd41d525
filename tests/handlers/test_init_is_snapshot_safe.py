"""Init (what SnapStart snapshots) touches no network and makes nothing unique.

Nor do the before-snapshot hooks, which do the first request's one-time work ahead.

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

# Run in the child: every socket operation and every JWT signature raises, and each is
# recorded too, in case the code that tried swallowed the error. So is every TLS context
# made: making one seeds OpenSSL's random generator, whose state must not be snapshotted.
FORBID_AND_INIT = """
import ssl
import sys

refused = []
def forbid(event, args):
    if not event.startswith("socket.") or event == "socket.__new__":
        return
    if event == "socket.bind" and args[1] in (("::1", 0), ("127.0.0.1", 0)):
        return  # urllib3's probe for IPv6 at import: a local bind, no traffic
    refused.append(f"{event} {args!r}")
    raise RuntimeError(f"network at init: {event} {args!r}")
sys.addaudithook(forbid)

tls_contexts = []
_new_context = ssl.SSLContext.__new__
def counting_new(cls, *args, **kwargs):
    tls_contexts.append(cls.__name__)
    return _new_context(cls, *args, **kwargs)
ssl.SSLContext.__new__ = counting_new

import jwt
def no_signing(*args, **kwargs):
    raise RuntimeError("a token signed at init")
jwt.encode = no_signing

from lambda_app.handlers import api
from lambda_app.db import engine as db

assert callable(api.handler)
assert db._engine is None, "an engine was built at init"

# Then the before-snapshot hooks, as Lambda runs them: priming the first request's
# one-time work (prime_first_request) stays as free of I/O and secrets as init.
import snapshot_restore_py
from lambda_app.models.base import Base
from tests.fixtures.snapstart import run_before_snapshot_hooks

mappers = list(Base.registry.mappers)
assert mappers and not any(m.configured for m in mappers), "mappers configured at import"
run_before_snapshot_hooks()
assert all(m.configured for m in mappers), "the hooks left mappers to the first request"
hooks = snapshot_restore_py.get_before_snapshot()
(app,) = [f.args[0] for f, _, _ in hooks if getattr(f, "func", None) is api.prime_first_request]
# FastAPI builds an included router's routes on the first request that reaches it
# (fastapi.routing._IncludedRouter): the hook has made every one of them already.
routers = [route for route in app.router.routes if hasattr(route, "effective_candidates")]
unbuilt = [r for r in routers if r._effective_candidates_version is None]
assert len(routers) >= 3 and not unbuilt, f"routers left to the first request: {unbuilt}"
assert db._engine is None, "an engine was built before the snapshot"
assert not refused, refused
assert not tls_contexts, f"TLS contexts made before the snapshot: {tls_contexts}"
import boto3
assert boto3.DEFAULT_SESSION._session._credentials is None, "credentials in the snapshot"

# The hooks loaded boto3 and what its clients read from disk, short of the credentials
# (which would have been a call to the credentials endpoint, and raised): after the
# restore, making the clients this configuration needs reads no botocore data file.
from lambda_app.core.settings import get_settings
services = api.aws_clients_made_on_first_use(get_settings())
assert services == ["rds", "secretsmanager", "sesv2"], services
def no_model_from_disk(event, args):
    if event == "open" and "botocore" in str(args[0]) and "data" in str(args[0]):
        raise RuntimeError(f"read after the snapshot: {args[0]}")
sys.addaudithook(no_model_from_disk)
for service in services:
    boto3.client(service, aws_access_key_id="test", aws_secret_access_key="test")
print("init ok")
"""

# The deployed API's configuration (see infra_cdk/stack.py): IAM database logins
# through the proxy, the JWT key in Secrets Manager and mail through SES, all only on
# first use; credentials from Lambda's endpoint, as a SnapStart function gets them.
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
    "EMAIL_BACKEND": "ses",
    "EMAIL_FROM": "no-reply@example.com",
    "FRONTEND_URL": "https://app.example.com",
    "AWS_REGION": "eu-west-1",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:9/2021-04-23/credentials",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN": "unused",
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
    assert "could not load" not in result.stdout + result.stderr  # core.aws.load_clients_ahead
