"""CodeDeploy's pre-traffic hook: call the new API version directly before it takes traffic.

Entry point: `lambda_app.handlers.pre_traffic.handler`.

CodeDeploy invokes this function with a lifecycle event (`DeploymentId`,
`LifecycleEventHookExecutionId`) after the new version is published and before the
`live` alias moves. It invokes that version (`TARGET_FUNCTION_NAME` with the qualifier
`TARGET_FUNCTION_VERSION`, both set by infra_cdk/constructs/deployment.py) with the
HTTP API 2.0 events API Gateway would send, checks each answer, and reports `Succeeded`
or `Failed` to CodeDeploy. A `Failed` report (or none within the hour) rolls the
deployment back: the alias never points at the new version.

- `GET /api/health`: the version starts and serves.
- `GET /api/health/ready`: its database path works (RDS Proxy, IAM token, TLS) with the
  schema the migrations just left.
- `GET /api/openapi.json`: the whole app was built (every router, every schema).

It imports only the standard library and boto3 (which the Lambda runtime provides),
nothing of the app: a small, fast function, even though it ships in the API's bundle.
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

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

# The API's 20 s timeout, plus a cold start (VPC, SnapStart restore) and some slack.
INVOKE_READ_TIMEOUT_SECONDS = 40
INVOKE_CONNECT_TIMEOUT_SECONDS = 5
SUCCEEDED = "Succeeded"
FAILED = "Failed"
USER_AGENT = "lambda-app-pre-traffic-hook"

HttpResult = dict[str, Any]
# One HTTP API 2.0 event in, the function's result (statusCode, headers, body) out.
# Raises InvokeFailed when the function errs instead of answering.
Invoke = Callable[[dict[str, Any]], HttpResult]


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


def check_version(invoke: Invoke) -> list[str]:
    """Every check against the version behind `invoke`: what failed (empty: all passed)."""
    failures = []
    for check in CHECKS:
        try:
            result = invoke(http_api_event(check.path))
        except Exception as exc:  # an invoke error, a timeout: the version failed this check
            failures.append(f"GET {check.path}: {type(exc).__name__}: {exc}")
            continue
        status = result.get("statusCode")
        body = _body(result)
        if status != check.status:
            failures.append(
                f"GET {check.path}: status {status}, expected {check.status}: "
                f"{json.dumps(body)[:300]}"
            )
            continue
        problem = check.body_problem(body)
        if problem:
            failures.append(f"GET {check.path}: {problem}")
    return failures


def run(event: dict[str, Any], *, invoke: Invoke, codedeploy: Any) -> dict[str, Any]:
    """Check the new version and report the verdict for this lifecycle event."""
    deployment_id = event["DeploymentId"]
    execution_id = event["LifecycleEventHookExecutionId"]
    failures = check_version(invoke)
    status = FAILED if failures else SUCCEEDED
    logger.info(
        json.dumps(
            {"message": "pre-traffic checks", "deployment_id": deployment_id, "status": status}
            | ({"failures": failures} if failures else {})
        )
    )
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status=status
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
        result = json.loads(raw)
        if not isinstance(result, dict):
            raise InvokeFailed(f"{function_name}:{version} returned {raw[:300]}")
        return result

    return invoke


def _clients() -> tuple[Any, Any]:
    import boto3
    from botocore.config import Config

    invoke_config = Config(
        read_timeout=INVOKE_READ_TIMEOUT_SECONDS,
        connect_timeout=INVOKE_CONNECT_TIMEOUT_SECONDS,
        retries={"max_attempts": 2, "mode": "standard"},  # GETs: safe to repeat
    )
    return boto3.client("lambda", config=invoke_config), boto3.client("codedeploy")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    lambda_client, codedeploy = _clients()
    invoke = lambda_invoke(
        lambda_client, os.environ["TARGET_FUNCTION_NAME"], os.environ["TARGET_FUNCTION_VERSION"]
    )
    return run(event, invoke=invoke, codedeploy=codedeploy)
