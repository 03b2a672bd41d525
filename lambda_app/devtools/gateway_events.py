"""The local gateway's translation: an HTTP request into the HTTP API 2.0 event API Gateway
would send, the function's result back into an HTTP response, and the Lambda context.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import h11
from starlette.types import Scope

# Lambda's limit for a synchronous invocation, request and response payload each.
PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024
# The API function's timeout (infra_cdk/constructs/api.py, API_TIMEOUT; a test ties them):
# the local gateway's invocations get the same deadline as the deployed ones.
API_TIMEOUT_SECONDS = 20.0

# Headers about one hop (the connection), not forwarded either way: uvicorn writes its own.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "expect", "upgrade"})
# Media types whose bodies API Gateway passes as text rather than base64.
_TEXT = re.compile(r"text/.*|application/(json|xml|javascript)|.*\+(json|xml)")
_JSON = (b"content-type", b"application/json")

LambdaHandler = Callable[[dict[str, Any], Any], Any]


class LocalLambdaContext:
    """What the Lambda runtime passes as `context` (the attributes Mangum and the app read)."""

    function_name = "lambda-app-api"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:lambda-app-api"
    memory_limit_in_mb = 1024
    log_group_name = "/aws/lambda/lambda-app-api"
    identity = client_context = None

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())
        day = time.strftime("%Y/%m/%d", time.gmtime())
        self.log_stream_name = f"{day}/[$LATEST]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + API_TIMEOUT_SECONDS

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[bytes, bytes]]  # as ASGI sends them
    body: bytes


class InvalidFunctionResponse(ValueError):
    """The function's result is not a payload 2.0 response API Gateway could send."""


NOT_FOUND = HttpResponse(404, [_JSON], b'{"message": "Not Found"}')
TOO_LARGE = HttpResponse(413, [_JSON], b'{"message": "Request Entity Too Large"}')
BAD_GATEWAY = HttpResponse(502, [_JSON], b'{"message": "Internal server error"}')


def _join_repeats(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for key, value in pairs:
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


def build_event(scope: Scope, body: bytes, *, request_id: str, stage: str) -> dict[str, Any]:
    """The HTTP API payload 2.0 event for the ASGI request `scope` with `body`."""
    # HTTP APIs hand the function the path percent-decoded: `/a%2541` arrives as `/a%41`.
    raw_path = unquote(scope["raw_path"].decode("latin-1")) or "/"
    raw_query = scope["query_string"].decode("latin-1")
    source_ip = scope["client"][0] if scope.get("client") else "127.0.0.1"
    pairs = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
    # API Gateway moves cookies out of the headers (ASGI header names are lower case).
    cookies = [c.strip() for n, v in pairs if n == "cookie" for c in v.split(";") if c.strip()]
    headers = _join_repeats(p for p in pairs if p[0] not in _HOP_BY_HOP and p[0] != "cookie")
    host = headers.get("host", "localhost")
    domain_name, _, port = host.rpartition(":") if ":" in host else (host, "", "")
    now = time.time()
    headers.setdefault("x-forwarded-for", source_ip)
    headers.setdefault("x-forwarded-proto", "http")
    headers.setdefault("x-amzn-trace-id", f"Root=1-{int(now):08x}-{secrets.token_hex(12)}")
    if port:
        headers.setdefault("x-forwarded-port", port)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": domain_name,
            "domainPrefix": domain_name.split(".", 1)[0],
            "http": {
                "method": scope["method"],
                "path": raw_path,
                "protocol": f"HTTP/{scope['http_version']}",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": stage,
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query := _join_repeats(parse_qsl(raw_query, keep_blank_values=True)):
        event["queryStringParameters"] = query
    if body:
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        text = None
        if _TEXT.fullmatch(media_type):
            with contextlib.suppress(UnicodeDecodeError):  # (then it goes as base64 after all)
                text = body.decode("utf-8")
        event["body"] = base64.b64encode(body).decode("ascii") if text is None else text
        event["isBase64Encoded"] = text is None
    return event


def response_from_result(result: Any) -> HttpResponse:
    """Turn a function result into HTTP as API Gateway does for payload 2.0."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # Payload 2.0: any JSON result without a statusCode is a 200 JSON body.
        return HttpResponse(200, [_JSON], json.dumps(result).encode())
    status = result["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise InvalidFunctionResponse(f"statusCode {status!r} is not a final HTTP status")
    raw_headers = result.get("headers") or {}
    raw_cookies = result.get("cookies") or []
    if not isinstance(raw_headers, dict) or not isinstance(raw_cookies, list):
        raise InvalidFunctionResponse("headers must be an object and cookies a list")
    fields = [(str(name).lower(), value) for name, value in raw_headers.items()]
    fields += [("set-cookie", cookie) for cookie in raw_cookies]
    if any(isinstance(v, bool) or not isinstance(v, str | int | float) for _, v in fields):
        raise InvalidFunctionResponse("header values must be strings")
    fields = [(name, str(value).strip(" \t")) for name, value in fields if name not in _HOP_BY_HOP]
    # uvicorn writes the response with h11 (http="h11" below) once the status line is out:
    # what h11 would refuse then is refused now, while it can still be a 502.
    try:
        headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in fields]
        h11.Response(status_code=status, headers=headers)
    except (UnicodeEncodeError, h11.LocalProtocolError) as exc:
        raise InvalidFunctionResponse("headers are not valid HTTP") from exc
    body = "" if result.get("body") is None else result["body"]
    if not isinstance(body, str):
        raise InvalidFunctionResponse("body must be a string")
    encoded = bool(result.get("isBase64Encoded"))
    try:
        payload = base64.b64decode(body, validate=True) if encoded else body.encode()
    except ValueError as exc:  # not base64 (binascii.Error), or a lone surrogate
        raise InvalidFunctionResponse("body can't be decoded") from exc
    if payload and _JSON[0] not in (name for name, _ in headers):
        headers.append(_JSON)
    return HttpResponse(status, headers, payload)
