"""The API bundle `cdk deploy` ships, on arm64 under awslambdaric, answering HTTP API events.

One container (one function process) serves a user's first session: health, register,
log in with a form body (base64-encoded, as HTTP APIs deliver it), read their profile,
then a wrong path and an invalid body. It runs with `python -v`, so the tests can also
tell where every module came from.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.lambda_events import (
    HttpRequest,
    LambdaResult,
    bearer,
    form_body,
    http_api_v2,
    json_body,
    parse_result,
)
from tests.lambda_target.bundles import Target
from tests.lambda_target.function_process import FUNCTION_USER, FunctionConfig, running_function
from tests.lambda_target.observe import (
    VerboseImports,
    file_list,
    json_lines,
    shipped_bytecode,
)
from tests.lambda_target.runtime_api import Invocation

pytestmark = pytest.mark.slow

USERNAME = f"target_{uuid.uuid4().hex[:10]}"
PASSWORD = f"pw-{uuid.uuid4().hex}"


@dataclass
class Session:
    """What one function process answered, said and left behind."""

    bundle: Path
    runtime_dir: Path
    allowed_paths: tuple[str, ...]  # the bundle, the runtime folder, the guest's stdlib
    invocations: dict[str, Invocation]
    uid: int
    stdout: str
    stderr: str
    files_before: dict[str, tuple[int, int]]
    files_after: dict[str, tuple[int, int]]

    def result(self, step: str) -> LambdaResult:
        invocation = self.invocations[step]
        assert invocation.kind == "response", (invocation.error_type, invocation.body)
        return parse_result(invocation.json(), invocation.request_id)


def _steps() -> list[tuple[str, HttpRequest]]:
    register_body, register_headers = json_body(
        {"username": USERNAME, "email": f"{USERNAME}@example.com", "password": PASSWORD}
    )
    token_body, token_headers = form_body({"username": USERNAME, "password": PASSWORD})
    invalid_body, invalid_headers = json_body(
        {"username": USERNAME, "email": "not an address", "password": "x"}
    )
    return [
        ("health", HttpRequest("GET", "/api/health")),
        (
            "register",
            HttpRequest("POST", "/api/auth/register", headers=register_headers, body=register_body),
        ),
        (
            "token",
            HttpRequest(
                "POST", "/api/auth/token", headers=token_headers, body=token_body, base64_body=True
            ),
        ),
        ("me", HttpRequest("GET", "/api/users/me")),  # the bearer token is added once known
        ("not_found", HttpRequest("GET", "/api/no-such-thing")),
        (
            "invalid",
            HttpRequest("POST", "/api/auth/register", headers=invalid_headers, body=invalid_body),
        ),
    ]


@pytest.fixture(scope="module")
def session(
    target: Target, api_function: FunctionConfig, api_database_url_for_tests: str, workspace: Path
) -> Session:
    bundle = target.bundle("api")
    config = api_function.with_environment(DATABASE_URL=api_database_url_for_tests)
    before = file_list(bundle)
    invocations: dict[str, Invocation] = {}
    logs = workspace / "logs" / "api-session"
    with running_function(bundle, target.runtime, config, logs=logs, verbose=True) as function:
        uid = function.uid()
        for step, request in _steps():
            if step == "me":
                token = _access_token(invocations["token"])
                request = dataclasses.replace(request, headers=bearer(token))
            invocations[step] = function.invoke(http_api_v2(request))
    return Session(
        bundle=bundle,
        runtime_dir=target.runtime.runtime,
        allowed_paths=tuple(
            f"{path}/" for path in (bundle, target.runtime.runtime, target.runtime.stdlib)
        ),
        invocations=invocations,
        uid=uid,
        stdout=function.stdout,
        stderr=function.stderr,
        files_before=before,
        files_after=file_list(bundle),
    )


def _access_token(token: Invocation) -> str:
    if token.kind != "response":
        return "no-token"
    result = parse_result(token.json(), token.request_id)
    return str(result.json()["access_token"]) if result.status == 200 else "no-token"


def test_health_answers_ok(session: Session) -> None:
    health = session.result("health")
    assert health.status == 200
    assert health.json() == {"status": "ok"}


def test_a_user_registers_logs_in_with_a_form_and_reads_their_profile(session: Session) -> None:
    registered = session.result("register")
    assert registered.status == 201, registered.body
    user = registered.json()
    assert user["username"] == USERNAME and user["email"] == f"{USERNAME}@example.com"
    assert user["is_superuser"] is False and "hashed_password" not in user

    token = session.result("token")
    assert token.status == 200, token.body
    issued = token.json()
    assert issued["token_type"] == "bearer" and issued["access_token"]

    me = session.result("me")
    assert me.status == 200, me.body
    assert me.json()["id"] == user["id"] and me.json()["username"] == USERNAME


def test_an_unknown_path_gets_the_error_shape(session: Session) -> None:
    missing = session.result("not_found")
    assert missing.status == 404
    assert missing.json() == {
        "error": {"code": "not_found", "message": "Not Found", "details": None}
    }


def test_an_invalid_body_gets_the_error_shape_without_the_input(session: Session) -> None:
    invalid = session.result("invalid")
    assert invalid.status == 422
    error = invalid.json()["error"]
    assert error["code"] == "validation_error" and error["message"] == "The request is invalid"
    assert {tuple(detail["loc"]) for detail in error["details"]} == {
        ("body", "email"),
        ("body", "password"),
    }
    assert "not an address" not in invalid.body.decode()


def test_each_invocation_logs_one_request_line_with_its_lambda_request_id(
    session: Session,
) -> None:
    # The request id comes from the Runtime API's Lambda-Runtime-Aws-Request-Id, through
    # awslambdaric's context object: logs and responses correlate as on AWS.
    requests = [
        record
        for record in json_lines(session.stdout)
        if record.get("logger") == "lambda_app.request" and record.get("message") == "request"
    ]
    logged = {record["request_id"]: record["status"] for record in requests}
    answered = {
        invocation.request_id: session.result(step).status
        for step, invocation in session.invocations.items()
    }
    assert logged == answered
    for step, invocation in session.invocations.items():
        assert session.result(step).header("x-request-id") == invocation.request_id


def test_every_module_comes_from_the_shipped_bytecode_and_nothing_is_written(
    session: Session,
) -> None:
    imports = VerboseImports.parse(session.stderr)
    # Every lambda_app module that ran was loaded from its .pyc in the bundle...
    app_modules = {name for name in imports.modules if name.split(".")[0] == "lambda_app"}
    assert {"lambda_app.handlers.api", "lambda_app.main", "lambda_app.db.engine"} <= app_modules
    not_from_bytecode = {
        name
        for name in app_modules
        if not shipped_bytecode(name, bundle=session.bundle) & imports.from_bytecode
    }
    assert not_from_bytecode == set()
    # ...and nothing at all was compiled from source, rejected as stale, or written.
    assert imports.from_source == set()
    assert imports.bytecode_rejected == []
    assert imports.bytecode_writes == []
    # Only the bundle, the runtime folder and the guest's own standard library: nothing
    # from this machine's Python installations.
    loaded = imports.loaded_paths()
    assert {path for path in loaded if not path.startswith(session.allowed_paths)} == set()
    runtime_client = f"{session.runtime_dir}/awslambdaric/"
    assert any(path.startswith(runtime_client) for path in imports.from_bytecode)


def test_the_bundle_is_unchanged_after_serving(session: Session) -> None:
    assert session.files_after == session.files_before


def test_the_function_runs_unprivileged(session: Session) -> None:
    # As root, the read-only bits would not stop a write: Lambda's user is not root either.
    assert session.uid == (pwd.getpwnam(FUNCTION_USER).pw_uid if os.geteuid() == 0 else os.getuid())
