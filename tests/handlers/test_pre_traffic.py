"""The pre-traffic hook against the real API handler, in-process, on the test database.

The hook's invoke transport calls `make_handler(create_app())` as Lambda would call the
new version (JSON in, JSON out); the CodeDeploy report is played back at the AWS API
with botocore's Stubber (moto has no `PutLifecycleEventHookExecutionStatus`), or, where
the hook's own clients are under test, at CodeDeploy's HTTP endpoint (CodeDeployEndpoint).
The Lambda transport itself (`lambda_invoke`) is checked against a stubbed Lambda client.
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
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from sqlalchemy.engine import make_url

from lambda_app.handlers.pre_traffic import (
    ATTEMPTS_PER_CHECK,
    CHECKS,
    FAILED,
    SUCCEEDED,
    Invoke,
    handler,
    http_api_event,
    lambda_invoke,
    run,
)
from lambda_app.handlers.pre_traffic_report import (
    REPORT_ATTEMPT_WORST_MS,
    REPORT_END_MARGIN_MS,
    REPORT_MAX_PAUSE_SECONDS,
    report,
    report_client,
)
from tests.fixtures.aws import use_dummy_aws_credentials
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
        target=lambda: in_process(new_version),
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
        target=lambda: in_process(version_without_database),
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
            target=lambda: lambda_invoke(lambda_client, "lambda-app-api", "7"),
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
            target=lambda: lambda_invoke(lambda_client, "lambda-app-api", "7"),
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
            target=lambda: lambda_invoke(lambda_client, "lambda-app-api", "7"),
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
        target=lambda: in_process(lambda event, context: HEALTHY),
        codedeploy=codedeploy_client,
        remaining_ms=broken_clock,
    )
    # then
    assert result["status"] == FAILED
    assert result["failures"] == ["the hook failed: RuntimeError: no context"]


# --- the report: the hook's own clients, CodeDeploy's endpoint played back -----------


class _Body:
    """A response body, as botocore reads it from the connection."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


@dataclass
class HookClock:
    """The hook's time left, spent only by what the test says takes time (the pauses,
    and each report attempt's `attempt_ms`): nothing waits on the wall clock."""

    remaining: int
    slept: list[float] = field(default_factory=list)

    def remaining_ms(self) -> int:
        return self.remaining

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.remaining -= int(seconds * 1000)


@dataclass
class CodeDeployEndpoint:
    """CodeDeploy's HTTP endpoint as every client of boto3's default session reaches it
    (botocore's before-send event, where moto plugs in too): each request's body is kept,
    with the hook's time left when it was sent; the first ones get `failures` (what
    botocore raises when no answer comes), the rest an answer. The clients, their
    timeouts and retry settings are the hook's own."""

    clock: HookClock
    attempt_ms: int = 0  # what each request spends of the hook's time
    failures: list[Exception] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    sent_with_ms_left: list[int] = field(default_factory=list)

    def __call__(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        assert request.body is not None
        self.requests.append(json.loads(request.body))
        self.sent_with_ms_left.append(self.clock.remaining)
        self.clock.remaining -= self.attempt_ms
        if self.failures:
            raise self.failures.pop(0)
        body = json.dumps(
            {"lifecycleEventHookExecutionId": LIFECYCLE_EVENT["LifecycleEventHookExecutionId"]}
        )
        return AWSResponse(request.url, 200, {}, _Body(body.encode()))


def reported(status: str) -> dict[str, str]:
    return {
        "deploymentId": LIFECYCLE_EVENT["DeploymentId"],
        "lifecycleEventHookExecutionId": LIFECYCLE_EVENT["LifecycleEventHookExecutionId"],
        "status": status,
    }


@pytest.fixture
def codedeploy_endpoint(monkeypatch: pytest.MonkeyPatch) -> CodeDeployEndpoint:
    use_dummy_aws_credentials(monkeypatch, REGION)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    boto3.setup_default_session()
    endpoint = CodeDeployEndpoint(clock=HookClock(remaining=120_000))
    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("before-send.codedeploy", endpoint)
    return endpoint


def connection_error() -> EndpointConnectionError:
    return EndpointConnectionError(endpoint_url=f"https://codedeploy.{REGION}.amazonaws.com/")


def a_healthy_version(event: dict[str, Any], context: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "ok"}
    if event["rawPath"] == "/api/openapi.json":
        body = {"openapi": "3.1.0", "paths": {"/api/health/ready": {}}}
    return {"statusCode": 200, "headers": {}, "body": json.dumps(body)}


def test_a_report_whose_connection_broke_is_sent_again_for_the_same_lifecycle_event(
    codedeploy_endpoint: CodeDeployEndpoint,
) -> None:
    # given: the first report gets no answer (an endpoint blip)
    codedeploy_endpoint.failures = [connection_error()]
    clock = codedeploy_endpoint.clock
    # when
    result = run(
        LIFECYCLE_EVENT,
        target=lambda: in_process(a_healthy_version),
        codedeploy=report_client(),
        remaining_ms=clock.remaining_ms,
        sleep=clock.sleep,
    )
    # then: CodeDeploy heard the verdict on the second attempt, for the same hook run
    assert result["status"] == SUCCEEDED
    assert codedeploy_endpoint.requests == [reported(SUCCEEDED), reported(SUCCEEDED)]
    assert len(clock.slept) == 1


def test_a_hook_without_its_target_version_still_reports_failed(
    codedeploy_endpoint: CodeDeployEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the environment the deployment construct sets, without the version
    monkeypatch.setenv("TARGET_FUNCTION_NAME", "lambda-app-api")
    monkeypatch.delenv("TARGET_FUNCTION_VERSION", raising=False)
    # when: Lambda calls the entry point
    result = handler(LIFECYCLE_EVENT, FakeLambdaContext(timeout_seconds=120))
    # then: CodeDeploy is told Failed at once, rather than waiting out its hour
    assert result["status"] == FAILED
    assert result["failures"] == ["the hook failed: KeyError: 'TARGET_FUNCTION_VERSION'"]
    assert codedeploy_endpoint.requests == [reported(FAILED)]


def test_report_attempts_stop_while_the_hook_still_has_time_and_the_failure_is_raised(
    codedeploy_endpoint: CodeDeployEndpoint, caplog: pytest.LogCaptureFixture
) -> None:
    # given: 40 s left, and CodeDeploy never answers: each attempt takes its whole
    # connect and read timeouts, and the pauses between attempts grow
    codedeploy_endpoint.clock.remaining = 40_000
    codedeploy_endpoint.attempt_ms = REPORT_ATTEMPT_WORST_MS
    codedeploy_endpoint.failures = [
        ReadTimeoutError(endpoint_url="https://codedeploy") for _ in range(20)
    ]
    clock = codedeploy_endpoint.clock
    # when
    with pytest.raises(ReadTimeoutError):
        report(
            report_client(),
            deployment_id=LIFECYCLE_EVENT["DeploymentId"],
            execution_id=LIFECYCLE_EVENT["LifecycleEventHookExecutionId"],
            status=FAILED,
            remaining_ms=clock.remaining_ms,
            sleep=clock.sleep,
        )
    # then: it tried more than botocore's two attempts, every one of the same report,
    # each started with time for all of it, and it stopped before Lambda would end it
    attempts = codedeploy_endpoint.requests
    assert len(attempts) > 2 and all(body == reported(FAILED) for body in attempts)
    assert all(
        left >= REPORT_ATTEMPT_WORST_MS + REPORT_END_MARGIN_MS
        for left in codedeploy_endpoint.sent_with_ms_left
    )
    assert clock.slept == sorted(clock.slept) and max(clock.slept) <= REPORT_MAX_PAUSE_SECONDS
    assert REPORT_END_MARGIN_MS <= clock.remaining < REPORT_ATTEMPT_WORST_MS
    # ...and its log names the lifecycle event CodeDeploy is left waiting on
    (line,) = [r for r in caplog.records if r.levelname == "ERROR"]
    logged = json.loads(line.getMessage())
    assert logged["deployment_id"] == LIFECYCLE_EVENT["DeploymentId"]
    assert (
        logged["lifecycle_event_hook_execution_id"]
        == (LIFECYCLE_EVENT["LifecycleEventHookExecutionId"])
    )
    assert logged["attempts"] == len(attempts) and logged["status"] == FAILED
