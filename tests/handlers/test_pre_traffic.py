"""The pre-traffic hook against the real API handler, in-process, on the test database.

The hook's invoke transport calls `make_handler(create_app())` as Lambda would call the
new version (JSON in, JSON out); the CodeDeploy report is played back at the AWS API
with botocore's Stubber (moto has no `PutLifecycleEventHookExecutionStatus`). The
Lambda transport itself (`lambda_invoke`) is checked against a stubbed Lambda client.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from sqlalchemy.engine import make_url

from lambda_app.handlers.pre_traffic import (
    ATTEMPTS_PER_CHECK,
    CHECKS,
    FAILED,
    SUCCEEDED,
    Invoke,
    http_api_event,
    lambda_invoke,
    run,
)
from tests.fixtures.lambda_context import FakeLambdaContext
from tests.fixtures.lambda_events import Handler
from tests.fixtures.ports import free_port

REGION = "eu-west-1"
LIFECYCLE_EVENT = {
    "DeploymentId": "d-A1B2C3D4E",
    "LifecycleEventHookExecutionId": "eyJlbmNyeXB0ZWREYXRhIjoiZXhhbXBsZSJ9",
}


def in_process(handler: Handler) -> Invoke:
    """Invoke the handler as Lambda invokes a version: the event and result go through JSON."""

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        result = handler(json.loads(json.dumps(event)), FakeLambdaContext())
        return dict(json.loads(json.dumps(result)))

    return invoke


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")


@pytest.fixture
def codedeploy(aws_credentials: None) -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("codedeploy", region_name=REGION)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expect_report(stubber: Stubber, status: str) -> None:
    stubber.add_response(
        "put_lifecycle_event_hook_execution_status",
        {"lifecycleEventHookExecutionId": LIFECYCLE_EVENT["LifecycleEventHookExecutionId"]},
        {
            "deploymentId": LIFECYCLE_EVENT["DeploymentId"],
            "lifecycleEventHookExecutionId": LIFECYCLE_EVENT["LifecycleEventHookExecutionId"],
            "status": status,
        },
    )


@pytest.fixture
def new_version(lambda_container: None) -> Handler:
    """The new version's handler: the real app, on the migrated test database."""
    from lambda_app.handlers.api import make_handler
    from lambda_app.main import create_app

    return make_handler(create_app())


@pytest.fixture
def version_without_database(
    lambda_container: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Handler]:
    """A new version whose database is unreachable: its URL names a port nothing listens on."""
    from lambda_app.core.settings import get_settings
    from lambda_app.handlers.api import make_handler
    from lambda_app.main import create_app

    closed = make_url(os.environ["DATABASE_URL"]).set(host="127.0.0.1", port=free_port())
    monkeypatch.setenv("DATABASE_URL", closed.render_as_string(hide_password=False))
    get_settings.cache_clear()
    yield make_handler(create_app())
    monkeypatch.undo()
    get_settings.cache_clear()


def test_the_events_are_what_an_http_api_sends() -> None:
    event = http_api_event("/api/health/ready", now=1_700_000_000)
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == "/api/health/ready"
    assert event["requestContext"]["http"]["method"] == "GET"
    assert event["requestContext"]["stage"] == "$default"
    assert event["requestContext"]["timeEpoch"] == 1_700_000_000_000
    assert [check.path for check in CHECKS] == [
        "/api/health",
        "/api/health/ready",
        "/api/openapi.json",
    ]


def test_a_healthy_version_is_reported_succeeded(
    new_version: Handler, codedeploy: tuple[Any, Stubber]
) -> None:
    # given
    client, stubber = codedeploy
    expect_report(stubber, SUCCEEDED)
    # when
    result = run(
        LIFECYCLE_EVENT,
        invoke=in_process(new_version),
        codedeploy=client,
        remaining_ms=FakeLambdaContext(timeout_seconds=120).get_remaining_time_in_millis,
    )
    # then
    assert result == {"status": SUCCEEDED, "failures": []}


def test_a_version_whose_database_is_unreachable_is_reported_failed(
    version_without_database: Handler, codedeploy: tuple[Any, Stubber]
) -> None:
    # given
    client, stubber = codedeploy
    expect_report(stubber, FAILED)
    # when
    result = run(
        LIFECYCLE_EVENT,
        invoke=in_process(version_without_database),
        codedeploy=client,
        remaining_ms=FakeLambdaContext(timeout_seconds=120).get_remaining_time_in_millis,
    )
    # then: liveness and the schema still answer; readiness is the one that failed
    assert result["status"] == FAILED
    (failure,) = result["failures"]
    assert failure.startswith("GET /api/health/ready: status 503")
    assert "database_unavailable" in failure


def stream(payload: Any) -> StreamingBody:
    raw = json.dumps(payload).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def test_the_lambda_transport_invokes_the_new_version_and_a_crash_fails_the_check(
    aws_credentials: None, codedeploy: tuple[Any, Stubber]
) -> None:
    # given: a version that crashes on every invocation
    lambda_client = boto3.client("lambda", region_name=REGION)
    crash = {"errorMessage": "boom", "errorType": "RuntimeError", "stackTrace": []}
    codedeploy_client, codedeploy_stubber = codedeploy
    expect_report(codedeploy_stubber, FAILED)
    with Stubber(lambda_client) as lambda_stubber:
        for _ in CHECKS:
            lambda_stubber.add_response(
                "invoke",
                {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": stream(crash)},
                {
                    "FunctionName": "lambda-app-api",
                    "Qualifier": "7",
                    "InvocationType": "RequestResponse",
                    "Payload": ANY,
                },
            )
        # when
        result = run(
            LIFECYCLE_EVENT,
            invoke=lambda_invoke(lambda_client, "lambda-app-api", "7"),
            codedeploy=codedeploy_client,
            remaining_ms=FakeLambdaContext(timeout_seconds=120).get_remaining_time_in_millis,
        )
        lambda_stubber.assert_no_pending_responses()
    # then: a version that answered with an error is not asked again
    assert result["status"] == FAILED
    assert len(result["failures"]) == len(CHECKS)
    assert all("lambda-app-api:7 Unhandled" in failure for failure in result["failures"])


HEALTHY = {"statusCode": 200, "headers": {}, "body": json.dumps({"status": "ok"})}


def expect_invoke(stubber: Stubber, payload: Any) -> None:
    stubber.add_response(
        "invoke",
        {"StatusCode": 200, "Payload": stream(payload)},
        {
            "FunctionName": "lambda-app-api",
            "Qualifier": "7",
            "InvocationType": "RequestResponse",
            "Payload": ANY,
        },
    )


@dataclass
class RunningOut:
    """The hook's Lambda context as the run goes on: the time left at each look, in turn
    (a slow version spends it; Stubber's answers take none)."""

    remaining: list[int] = field(default_factory=list)

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining.pop(0) if len(self.remaining) > 1 else self.remaining[0]


def test_the_hook_reports_failed_while_it_still_has_time_to_report(
    aws_credentials: None, codedeploy: tuple[Any, Stubber]
) -> None:
    # given: the first check answers, then a slow one has used up the hook's time, so
    # that another invoke (up to its 40 s read timeout) could outlast the hook's own
    # timeout, and Lambda would end it with nothing reported: CodeDeploy would wait an hour
    lambda_client = boto3.client("lambda", region_name=REGION)
    codedeploy_client, codedeploy_stubber = codedeploy
    expect_report(codedeploy_stubber, FAILED)
    context = RunningOut(remaining=[115_000, 50_000])
    with Stubber(lambda_client) as lambda_stubber:
        expect_invoke(lambda_stubber, HEALTHY)  # only the first check is ever sent
        # when
        result = run(
            LIFECYCLE_EVENT,
            invoke=lambda_invoke(lambda_client, "lambda-app-api", "7"),
            codedeploy=codedeploy_client,
            remaining_ms=context.get_remaining_time_in_millis,
        )
        lambda_stubber.assert_no_pending_responses()
    # then: reported Failed, naming the checks never run
    assert result["status"] == FAILED
    assert result["failures"] == [
        "GET /api/health/ready: not run, 50 s left is too little for an invoke and the report",
        "GET /api/openapi.json: not run, 50 s left is too little for an invoke and the report",
    ]


def test_a_check_the_invoke_could_not_reach_is_tried_again_a_bounded_number_of_times(
    aws_credentials: None, codedeploy: tuple[Any, Stubber]
) -> None:
    # given: Lambda throttles every invoke of the first check, then answers the others
    lambda_client = boto3.client("lambda", region_name=REGION)
    codedeploy_client, codedeploy_stubber = codedeploy
    expect_report(codedeploy_stubber, FAILED)
    with Stubber(lambda_client) as lambda_stubber:
        for _ in range(ATTEMPTS_PER_CHECK):
            lambda_stubber.add_client_error(
                "invoke", service_error_code="TooManyRequestsException", http_status_code=429
            )
        expect_invoke(lambda_stubber, HEALTHY)
        expect_invoke(
            lambda_stubber,
            {"statusCode": 200, "body": json.dumps({"openapi": "3.1.0", "paths": {}})},
        )
        # when
        result = run(
            LIFECYCLE_EVENT,
            invoke=lambda_invoke(lambda_client, "lambda-app-api", "7"),
            codedeploy=codedeploy_client,
            remaining_ms=FakeLambdaContext(timeout_seconds=120).get_remaining_time_in_millis,
        )
        lambda_stubber.assert_no_pending_responses()
    # then
    assert ATTEMPTS_PER_CHECK == 2
    assert result["status"] == FAILED
    throttled, schema = result["failures"]
    assert throttled.startswith(
        f"GET /api/health: {ATTEMPTS_PER_CHECK} attempts: TooManyRequestsException"
    )
    assert schema == "GET /api/openapi.json: the schema lists no /api/health/ready path"


def test_an_unexpected_error_is_still_reported_failed(codedeploy: tuple[Any, Stubber]) -> None:
    # given: the run breaks outside any check (here: the clock itself)
    codedeploy_client, codedeploy_stubber = codedeploy
    expect_report(codedeploy_stubber, FAILED)

    def broken_clock() -> int:
        raise RuntimeError("no context")

    # when
    result = run(
        LIFECYCLE_EVENT,
        invoke=in_process(lambda event, context: HEALTHY),
        codedeploy=codedeploy_client,
        remaining_ms=broken_clock,
    )
    # then
    assert result["status"] == FAILED
    assert result["failures"] == ["the hook failed: RuntimeError: no context"]
