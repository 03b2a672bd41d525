"""Lambda events for the API handler, built from the JSON fixtures in `events/`.

Each fixture is a whole event as its source sends it (shaped like the AWS docs and
Powertools' tests/events); a builder copies it and fills in one HTTP request the way
that source encodes it (where the stage goes, how repeated query keys, cookies and
bodies travel). `invoke` calls a handler as the Lambda runtime would (JSON in, JSON
out) and `LambdaResult` reads any source's response format back.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from lambda_app.local.gateway import LocalLambdaContext

EVENTS_DIR = Path(__file__).parent / "events"
Event = dict[str, Any]


def load_event(name: str) -> Event:
    return json.loads((EVENTS_DIR / f"{name}.json").read_text())


@dataclass(frozen=True)
class HttpRequest:
    method: str = "GET"
    path: str = "/api/health"
    query: Sequence[tuple[str, str]] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: Sequence[str] = ()
    body: bytes | None = None
    base64_body: bool = False  # how the source delivers the body

    def event_body(self) -> tuple[str | None, bool]:
        if self.body is None:
            return None, False
        if self.base64_body:
            return base64.b64encode(self.body).decode(), True
        return self.body.decode(), False

    def header_items(self) -> list[tuple[str, str]]:
        items = list(self.headers.items())
        if self.cookies:
            items.append(("Cookie", "; ".join(self.cookies)))
        return items


def _multi_value_query(
    query: Sequence[tuple[str, str]],
) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in query:
        single[key] = value  # REST API keeps the last value in queryStringParameters
        multi.setdefault(key, []).append(value)
    return single, multi


def _payload_v1(template: str, request: HttpRequest, *, stage: str, client_path: str) -> Event:
    event = load_event(template)
    event["httpMethod"] = request.method
    event["path"] = request.path
    if "pathParameters" in event and event["resource"] == "/{proxy+}":
        event["pathParameters"] = {"proxy": request.path.lstrip("/")}
    for name, value in request.header_items():
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    single, multi = _multi_value_query(request.query)
    event["queryStringParameters"] = single or None
    event["multiValueQueryStringParameters"] = multi or None
    event["body"], event["isBase64Encoded"] = request.event_body()
    context = event["requestContext"]
    context.update(httpMethod=request.method, path=client_path, stage=stage)
    context["requestId"] = str(uuid.uuid4())
    return event


def rest_api_v1(request: HttpRequest, *, stage: str = "prod") -> Event:
    """API Gateway REST API (payload 1.0): `path` has no stage, requestContext.path has it."""
    return _payload_v1("rest_api_v1", request, stage=stage, client_path=f"/{stage}{request.path}")


def http_api_v1(request: HttpRequest) -> Event:
    """API Gateway HTTP API with payload format 1.0 (`$default` stage)."""
    return _payload_v1("http_api_v1", request, stage="$default", client_path=request.path)


def _payload_v2(template: str, request: HttpRequest, *, stage: str) -> Event:
    event = load_event(template)
    raw_path = request.path if stage == "$default" else f"/{stage}{request.path}"
    event["rawPath"] = raw_path
    event["rawQueryString"] = urlencode(list(request.query))
    joined: dict[str, str] = {}
    for key, value in request.query:  # payload 2.0 joins repeated keys with commas
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    if joined:
        event["queryStringParameters"] = joined
    for name, value in request.headers.items():
        event["headers"][name.lower()] = value
    if request.cookies:
        event["cookies"] = list(request.cookies)
    body, is_base64 = request.event_body()
    if body is not None:
        event["body"] = body
    event["isBase64Encoded"] = is_base64
    context = event["requestContext"]
    context["http"].update(method=request.method, path=raw_path)
    context["stage"] = stage
    context["requestId"] = base64.b64encode(uuid.uuid4().bytes[:11]).decode()
    return event


def http_api_v2(request: HttpRequest, *, stage: str = "$default") -> Event:
    """API Gateway HTTP API (payload 2.0); a named stage is part of rawPath."""
    return _payload_v2("http_api_v2", request, stage=stage)


def function_url(request: HttpRequest) -> Event:
    """Lambda Function URL (payload 2.0, always the `$default` stage)."""
    return _payload_v2("function_url", request, stage="$default")


def _alb(request: HttpRequest, *, multi_value: bool) -> Event:
    event = load_event("alb_multi_value" if multi_value else "alb")
    event["httpMethod"] = request.method
    event["path"] = request.path
    # ALB passes the query as the client encoded it, undecoded.
    encoded = [(quote(k, safe=""), quote(v, safe="")) for k, v in request.query]
    single, multi = _multi_value_query(encoded)
    body, is_base64 = request.event_body()
    event["body"], event["isBase64Encoded"] = body or "", is_base64
    if multi_value:
        event["multiValueQueryStringParameters"] = multi
        for name, value in request.header_items():
            event["multiValueHeaders"][name.lower()] = [value]
    else:
        event["queryStringParameters"] = single
        for name, value in request.header_items():
            event["headers"][name.lower()] = value
    return event


def alb(request: HttpRequest) -> Event:
    return _alb(request, multi_value=False)


def alb_multi_value(request: HttpRequest) -> Event:
    """ALB target group with multi-value headers enabled."""
    return _alb(request, multi_value=True)


SOURCES: dict[str, Callable[[HttpRequest], Event]] = {
    "rest_api_v1": rest_api_v1,
    "http_api_v1": http_api_v1,
    "http_api_v2": http_api_v2,
    "function_url": function_url,
    "alb": alb,
    "alb_multi_value": alb_multi_value,
}


@dataclass(frozen=True)
class LambdaResult:
    status: int
    headers: dict[str, list[str]]  # lower-cased names, every value
    body: bytes
    raw: dict[str, Any]
    request_id: str  # the invocation's aws_request_id

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def set_cookies(self) -> list[str]:
        return self.headers.get("set-cookie", [])

    def json(self) -> Any:
        return json.loads(self.body)


def parse_result(result: dict[str, Any], request_id: str) -> LambdaResult:
    headers: dict[str, list[str]] = {}
    for name, value in (result.get("headers") or {}).items():
        headers.setdefault(name.lower(), []).append(value)  # ALB: case-mutated duplicates
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.setdefault(name.lower(), []).extend(values)
    for cookie in result.get("cookies") or []:
        headers.setdefault("set-cookie", []).append(cookie)
    body = result.get("body") or ""
    raw_body = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return LambdaResult(result["statusCode"], headers, raw_body, result, request_id)


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def invoke(handler: Handler, event: Event) -> LambdaResult:
    """One invocation as the Lambda runtime makes it: JSON event in, JSON result out."""
    context = LocalLambdaContext()
    result = handler(json.loads(json.dumps(event)), context)
    return parse_result(json.loads(json.dumps(result)), context.aws_request_id)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def json_body(payload: Any) -> tuple[bytes, dict[str, str]]:
    return json.dumps(payload).encode(), {"Content-Type": "application/json"}


def form_body(fields: Mapping[str, str]) -> tuple[bytes, dict[str, str]]:
    return urlencode(fields).encode(), {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass(frozen=True)
class Account:
    username: str
    password: str
    token: str


def register_and_login(
    handler: Handler, build: Callable[[HttpRequest], Event] = http_api_v2
) -> Account:
    """A new user, created and logged in through the handler itself (rows really commit).

    The handler runs on its own event loop, so the tests' rolled-back session (bound
    to pytest-asyncio's loop) can't be shared with it; unique names keep runs apart.
    """
    username = f"lambda_{uuid.uuid4().hex[:12]}"
    password = f"pw-{uuid.uuid4().hex}"
    body, headers = json_body(
        {"username": username, "email": f"{username}@example.com", "password": password}
    )
    created = invoke(
        handler, build(HttpRequest("POST", "/api/auth/register", headers=headers, body=body))
    )
    assert created.status == 201, created.body
    body, headers = form_body({"username": username, "password": password})
    # Form posts arrive base64-encoded from HTTP APIs and Function URLs.
    login = HttpRequest("POST", "/api/auth/token", headers=headers, body=body, base64_body=True)
    issued = invoke(handler, build(login))
    assert issued.status == 200, issued.body
    return Account(username, password, issued.json()["access_token"])


def request_log_records(lines: list[str]) -> list[dict[str, Any]]:
    """The middleware's one-per-request lines among captured JSON log lines."""
    records = [json.loads(line) for line in lines]
    return [r for r in records if r["logger"] == "lambda_app.request" and r["message"] == "request"]
