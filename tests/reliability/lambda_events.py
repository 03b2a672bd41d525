"""API Gateway HTTP API (payload 2.0) events and a Lambda context, shaped like the real thing."""

from __future__ import annotations

import base64
import json as jsonlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode


@dataclass
class FakeLambdaContext:
    """The attributes Mangum and our middleware read from the Lambda context."""

    function_name: str = "api"
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:api"
    log_group_name: str = "/aws/lambda/api"
    log_stream_name: str = "2026/01/01/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def http_api_event(
    method: str,
    path: str,
    *,
    query: dict[str, str | int] | None = None,
    headers: dict[str, str] | None = None,
    json: Any = None,
    form: dict[str, str] | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API v2 event for `method path` with an optional JSON or form body."""
    all_headers = {
        "accept": "application/json",
        "host": "abc123.execute-api.eu-west-1.amazonaws.com",
        "user-agent": "reliability-suite",
        "x-forwarded-proto": "https",
        **(headers or {}),
    }
    body: str | None = None
    if json is not None:
        body = jsonlib.dumps(json)
        all_headers["content-type"] = "application/json"
    elif form is not None:
        body = urlencode(form)
        all_headers["content-type"] = "application/x-www-form-urlencoded"
    if token is not None:
        all_headers["authorization"] = f"Bearer {token}"
    raw_query = urlencode(query or {})
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "198.51.100.7",
                "userAgent": "reliability-suite",
            },
            "requestId": uuid.uuid4().hex[:16],
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = {k: str(v) for k, v in query.items()}
    if body is not None:
        event["body"] = body
    return event


def response_json(response: dict[str, Any]) -> Any:
    """The JSON body of a Lambda proxy response (base64-decoded when flagged)."""
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return jsonlib.loads(body) if body else None
