"""CodeDeploy's pre-traffic hook: call the new API version directly before it takes traffic.

Entry point: `lambda_app.handlers.pre_traffic.handler`.

CodeDeploy invokes this function with a lifecycle event (`DeploymentId`,
`LifecycleEventHookExecutionId`) after the new version is published and before the
`live` alias moves. It invokes that version (`TARGET_FUNCTION_NAME` with the qualifier
`TARGET_FUNCTION_VERSION`, both set by infra_cdk/constructs/deployment.py) with the
HTTP API 2.0 events API Gateway would send, checks each answer, and reports `Succeeded`
or `Failed` to CodeDeploy. A `Failed` report (or none within the hour) rolls the
deployment back: the alias never points at the new version.

It reports whatever happens, before its own timeout: a hook that reports nothing leaves
CodeDeploy waiting the full hour (and the stack update with it). Whatever breaks before
or during the checks (its clients, its environment, a check) is reported as `Failed`,
with the event's ids. An invoke starts only while the worst it can take still leaves
time to report; what could not run is reported as a failure. Each check is tried at
most ATTEMPTS_PER_CHECK times. The report itself (throttled, a connection that broke) is
tried again with a growing pause for as long as the time left allows one more attempt;
one that never got through is logged and raised. Lambda does not retry the hook
(its EventInvokeConfig allows no retry), so a run is never repeated.

- `GET /api/health`: the version starts and serves.
- `GET /api/health/ready`: its database path works (RDS Proxy, IAM token, TLS) with the
  schema the migrations just left: as the API's role, it reads every table and column
  this version maps (lambda_app/health/service.py).
- `GET /api/openapi.json`: the whole app was built (every router, every schema).

It imports only the standard library, boto3 (which the Lambda runtime provides) and its
own report (pre_traffic_report), nothing of the app: a small, fast function, even though
it ships in the API's bundle.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from lambda_app.handlers.pre_traffic_report import report, report_client

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

# The API's 20 s timeout, plus a cold start (VPC, SnapStart restore) and some slack.
INVOKE_READ_TIMEOUT_SECONDS = 40
INVOKE_CONNECT_TIMEOUT_SECONDS = 5
INVOKE_WORST_CASE_MS = (INVOKE_READ_TIMEOUT_SECONDS + INVOKE_CONNECT_TIMEOUT_SECONDS) * 1000
# A check whose invoke got no answer (throttled, unreachable, timed out) is tried once
# more, after a pause; botocore retries nothing, so every attempt passes the time guard.
ATTEMPTS_PER_CHECK = 2
RETRY_PAUSE_SECONDS = 1
# What the checks leave for the report (pre_traffic_report.report): a few attempts, with
# the pauses between them.
REPORT_MARGIN_MS = 20_000
SUCCEEDED = "Succeeded"
FAILED = "Failed"
USER_AGENT = "lambda-app-pre-traffic-hook"

HttpResult = dict[str, Any]
# One HTTP API 2.0 event in, the function's result (statusCode, headers, body) out.
# Raises InvokeFailed when the function errs instead of answering.
Invoke = Callable[[dict[str, Any]], HttpResult]
RemainingMs = Callable[[], int]


class InvokeFailed(RuntimeError):
    pass


def _ok_status(body: Any) -> str | None:
    if isinstance(body, dict) and body.get("status") == "ok":
        return None
    return f'expected {{"status": "ok"}}, got {json.dumps(body)[:200]}'


def _openapi_schema(body: Any) -> str | None:
    if not isinstance(body, dict) or not str(body.get("openapi", "")).startswith("3."):
        return "not an OpenAPI 3 document"
    if "/api/health/ready" not in (body.get("paths") or {}):
        return "the schema lists no /api/health/ready path"
    return None


@dataclass(frozen=True)
class Check:
    path: str
    # The JSON body -> what is wrong with it, or None.
    body_problem: Callable[[Any], str | None]
    status: int = 200


CHECKS = (
    Check("/api/health", _ok_status),
    Check("/api/health/ready", _ok_status),
    Check("/api/openapi.json", _openapi_schema),
)


def http_api_event(path: str, *, now: float | None = None) -> dict[str, Any]:
    """A `GET path` as an HTTP API (payload 2.0, `$default` stage) sends it."""
    now = time.time() if now is None else now
    host = "pre-traffic-hook.internal"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "host": host,
            "user-agent": USER_AGENT,
            "x-forwarded-proto": "https",
            "x-forwarded-port": "443",
        },
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "pre-traffic-hook",
            "domainName": host,
            "domainPrefix": "pre-traffic-hook",
            "http": {
                "method": "GET",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": USER_AGENT,
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": formatdate(now, usegmt=True),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }


def _body(result: HttpResult) -> Any:
    raw = result.get("body") or ""
    if result.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode("utf-8", errors="replace")
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _answer_problem(check: Check, result: HttpResult) -> str | None:
    status = result.get("statusCode")
    body = _body(result)
    if status != check.status:
        return f"status {status}, expected {check.status}: {json.dumps(body)[:300]}"
    return check.body_problem(body)


def _run_check(check: Check, invoke: Invoke, remaining_ms: RemainingMs) -> str | None:
    """What is wrong with the version's answer to `check` (None: nothing)."""
    errors: list[str] = []
    while len(errors) < ATTEMPTS_PER_CHECK:
        left_ms = remaining_ms()
        if left_ms < INVOKE_WORST_CASE_MS + REPORT_MARGIN_MS:
            tried = f"{len(errors)} attempts ({errors[-1]}), then " if errors else ""
            return (
                f"{tried}not run, {left_ms // 1000} s left is too little for an invoke "
                "and the report"
            )
        try:
            result = invoke(http_api_event(check.path))
        except InvokeFailed as exc:  # the version answered with an error: it would again
            return f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # no answer came: worth another attempt
            errors.append(f"{type(exc).__name__}: {exc}")
            if len(errors) < ATTEMPTS_PER_CHECK:
                time.sleep(RETRY_PAUSE_SECONDS)
            continue
        return _answer_problem(check, result)
    return f"{len(errors)} attempts: {errors[-1]}"


def check_version(invoke: Invoke, remaining_ms: RemainingMs) -> list[str]:
    """Every check against the version behind `invoke`: what failed (empty: all passed)."""
    failures = []
    for check in CHECKS:
        problem = _run_check(check, invoke, remaining_ms)
        if problem:
            failures.append(f"GET {check.path}: {problem}")
    return failures


def run(
    event: dict[str, Any],
    *,
    target: Callable[[], Invoke],
    codedeploy: Any,
    remaining_ms: RemainingMs,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Check the new version and report the verdict for this lifecycle event.

    `target` sets up the invoke of the version to check (clients, environment): it runs
    inside the guard, so its failure is reported too. `remaining_ms` is the hook's time
    left (the Lambda context's get_remaining_time_in_millis).
    """
    deployment_id = event["DeploymentId"]
    execution_id = event["LifecycleEventHookExecutionId"]
    try:
        failures = check_version(target(), remaining_ms)
    except Exception as exc:  # whatever broke, CodeDeploy must hear Failed, not wait an hour
        logger.exception("pre-traffic checks broke")
        failures = [f"the hook failed: {type(exc).__name__}: {exc}"]
    status = FAILED if failures else SUCCEEDED
    logger.info(
        json.dumps(
            {"message": "pre-traffic checks", "deployment_id": deployment_id, "status": status}
            | ({"failures": failures} if failures else {})
        )
    )
    report(
        codedeploy,
        deployment_id=deployment_id,
        execution_id=execution_id,
        status=status,
        remaining_ms=remaining_ms,
        sleep=sleep,
    )
    return {"status": status, "failures": failures}


def lambda_invoke(client: Any, function_name: str, version: str) -> Invoke:
    """Invoke one version of the function synchronously, as API Gateway's integration does."""

    def invoke(event: dict[str, Any]) -> HttpResult:
        response = client.invoke(
            FunctionName=function_name,
            Qualifier=version,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
        )
        raw = response["Payload"].read().decode("utf-8", errors="replace")
        if response.get("FunctionError"):
            raise InvokeFailed(
                f"{function_name}:{version} {response['FunctionError']}: {raw[:300]}"
            )
        try:
            result = json.loads(raw)
        except ValueError:
            result = raw
        if not isinstance(result, dict):
            raise InvokeFailed(f"{function_name}:{version} returned {raw[:300]}")
        return result

    return invoke


def invoke_from_environment() -> Invoke:
    """The invoke of the version the deployment construct names in the environment."""
    import boto3
    from botocore.config import Config

    config = Config(
        read_timeout=INVOKE_READ_TIMEOUT_SECONDS,
        connect_timeout=INVOKE_CONNECT_TIMEOUT_SECONDS,
        # _run_check retries (GETs: safe to repeat), each attempt within the time left.
        retries={"total_max_attempts": 1, "mode": "standard"},
    )
    return lambda_invoke(
        boto3.client("lambda", config=config),
        os.environ["TARGET_FUNCTION_NAME"],
        os.environ["TARGET_FUNCTION_VERSION"],
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # Only the report's client is made out here (it needs nothing but the region Lambda
    # sets): without it no status could be sent. Everything else runs in run()'s guard.
    return run(
        event,
        target=invoke_from_environment,
        codedeploy=report_client(),
        remaining_ms=context.get_remaining_time_in_millis,
    )
