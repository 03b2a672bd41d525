"""Events whose body can't be decoded, or whose Host or X-Forwarded-Port header has no
readable port, get a 400 in their source's response format, not a function error (a 502
from API Gateway and ALB), and the container keeps serving."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lambda_app.core import metrics
from lambda_app.core.logging import TRACE_ID_ENV
from lambda_app.core.settings import get_settings
from tests.fixtures.lambda_events import (
    SOURCES,
    Event,
    Handler,
    HttpRequest,
    http_api_v2,
    invoke,
    json_body,
    request_log_records,
    rest_api_v1,
)

# What an invoker other than AWS may put in an event: (body, isBase64Encoded).
UNDECODABLE_BODIES: dict[str, tuple[Any, bool]] = {
    "not_base64": ("this is not base64!", True),
    "not_ascii_base64": ("ñ" * 8, True),
    "not_a_string": ({"username": "alice"}, False),
}


def undecodable(build: Any, body: Any, is_base64: bool) -> Event:
    payload, headers = json_body({"username": "alice"})
    event: Event = build(HttpRequest("POST", "/api/auth/register", headers=headers, body=payload))
    event["body"], event["isBase64Encoded"] = body, is_base64
    return event


@pytest.mark.parametrize("kind", list(UNDECODABLE_BODIES))
@pytest.mark.parametrize("source", list(SOURCES))
def test_an_undecodable_body_is_a_400_in_the_source_format(
    api_handler: Handler, source: str, kind: str
) -> None:
    # given
    build = SOURCES[source]
    body, is_base64 = UNDECODABLE_BODIES[kind]

    # when: the bad event, then a good one in the same container
    rejected = invoke(api_handler, undecodable(build, body, is_base64))
    served = invoke(api_handler, build(HttpRequest("GET", "/api/health")))

    # then
    assert rejected.status == 400
    assert rejected.json() == {
        "error": {
            "code": "undecodable_body",
            "message": "Request body could not be decoded",
            "details": None,
        }
    }
    assert rejected.header("content-type") == "application/json"
    assert rejected.header("x-request-id") == rejected.request_id
    assert rejected.header("cache-control") == served.header("cache-control") == "no-store"
    # The same response format as any answer from this source (e.g. multiValueHeaders
    # for a multi-value ALB target group, no multiValueHeaders for payload 2.0).
    assert rejected.raw.keys() == served.raw.keys()
    assert served.status == 200 and served.json() == {"status": "ok"}


def test_an_undecodable_body_is_logged_with_its_request_line_without_the_body(
    api_handler: Handler, log_lines: list[str]
) -> None:
    secret = f"password-{uuid.uuid4().hex}"
    body = f"password={secret}&not base64"
    with pytest.raises(binascii.Error):
        base64.b64decode(body)

    rejected = invoke(api_handler, undecodable(rest_api_v1, body, True))

    assert rejected.status == 400
    assert len(log_lines) == 2, log_lines  # why, then the request line every request has
    warning = json.loads(log_lines[0])
    assert warning["level"] == "WARNING"
    assert warning["logger"] == "lambda_app.request"
    assert warning["message"] == "undecodable request body"
    assert warning["request_id"] == rejected.request_id
    assert warning["status"] == 400
    assert warning["method"] == "POST"
    assert warning["path"] == "/prod/api/auth/register"  # as the client called it
    assert warning["error_type"] == "binascii.Error"
    (request,) = request_log_records(log_lines)
    assert request["level"] == "INFO"
    assert (request["method"], request["path"], request["status"]) == (
        "POST",
        "/prod/api/auth/register",
        400,
    )
    assert request["request_id"] == rejected.request_id and request["user_id"] is None
    assert isinstance(request["duration_ms"], float) and request["duration_ms"] >= 0
    logged = "\n".join(log_lines)
    assert secret not in logged and "not base64" not in logged


# Mangum reads these ports with int(): values an invoker (or a client, where a proxy passes
# its header on) may send, that would otherwise raise before the app runs.
MALFORMED_SERVER_HEADERS: dict[str, dict[str, str]] = {
    "joined_ports": {"X-Forwarded-Port": "443,443"},
    "port_not_a_number": {"X-Forwarded-Port": "https"},
    "ipv6_host": {"Host": "[::1]:443"},
    "empty_port": {"Host": "api.example.com:"},
}


@pytest.mark.parametrize("kind", list(MALFORMED_SERVER_HEADERS))
@pytest.mark.parametrize("source", list(SOURCES))
def test_a_malformed_host_or_port_header_is_a_400_in_the_source_format(
    api_handler: Handler, log_lines: list[str], source: str, kind: str
) -> None:
    build = SOURCES[source]
    headers = MALFORMED_SERVER_HEADERS[kind]

    rejected = invoke(api_handler, build(HttpRequest("GET", "/api/health", headers=headers)))
    served = invoke(api_handler, build(HttpRequest("GET", "/api/health")))

    assert rejected.status == 400
    assert rejected.json() == {
        "error": {
            "code": "invalid_header",
            "message": "The Host or X-Forwarded-Port header is malformed",
            "details": None,
        }
    }
    assert rejected.header("x-request-id") == rejected.request_id
    assert rejected.raw.keys() == served.raw.keys()
    assert served.status == 200 and served.json() == {"status": "ok"}
    warning = json.loads(log_lines[0])
    assert warning["message"] == "malformed host or port header"
    assert (warning["status"], warning["request_id"]) == (400, rejected.request_id)
    assert warning["error_type"] == "builtins.ValueError"
    request = {r["request_id"]: r for r in request_log_records(log_lines)}[rejected.request_id]
    assert (request["method"], request["status"]) == ("GET", 400)
    rejected_lines = [line for line in log_lines if rejected.request_id in line]
    assert len(rejected_lines) == 2
    assert all(value not in line for value in headers.values() for line in rejected_lines)


APP_ORIGIN = "https://app.example.com"


@pytest.fixture
def cors_api_handler(lambda_container: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Handler]:
    """The container's handler, built as Lambda builds it, with CORS_ALLOWED_ORIGINS set."""
    from lambda_app.core.settings import get_settings
    from lambda_app.handlers.api import _build_container_handler

    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", APP_ORIGIN)
    get_settings.cache_clear()
    yield _build_container_handler()
    monkeypatch.undo()
    get_settings.cache_clear()


def _with_headers(headers: dict[str, str]) -> Callable[[HttpRequest], Event]:
    def build(request: HttpRequest) -> Event:
        return http_api_v2(
            HttpRequest(
                request.method,
                request.path,
                headers={**request.headers, **headers},
                body=request.body,
            )
        )

    return build


REJECTED_EVENTS: dict[str, Callable[[dict[str, str]], Event]] = {
    "undecodable_body": lambda headers: undecodable(
        _with_headers(headers), "this is not base64!", True
    ),
    "invalid_header": lambda headers: http_api_v2(
        HttpRequest("GET", "/api/health", headers={"X-Forwarded-Port": "https", **headers})
    ),
}


@pytest.mark.parametrize("kind", list(REJECTED_EVENTS))
def test_the_handlers_own_400s_carry_the_apps_cors_headers(
    cors_api_handler: Handler, kind: str
) -> None:
    # given: a call from the allowed origin, and one from another
    from_app, from_elsewhere = (
        REJECTED_EVENTS[kind]({"Origin": origin}) for origin in (APP_ORIGIN, "https://evil.test")
    )

    # when
    rejected = invoke(cors_api_handler, from_app)
    refused = invoke(cors_api_handler, from_elsewhere)
    served = invoke(
        cors_api_handler,
        http_api_v2(HttpRequest("GET", "/api/health", headers={"Origin": APP_ORIGIN})),
    )

    # then: the browser may read the 400 as it may read any of the app's answers
    assert (rejected.status, rejected.json()["error"]["code"]) == (400, kind)
    for name in ("access-control-allow-origin", "access-control-expose-headers", "vary"):
        assert rejected.header(name) == served.header(name), name
    assert rejected.header("access-control-allow-origin") == APP_ORIGIN
    assert rejected.header("x-request-id") == rejected.request_id
    assert refused.status == 400 and refused.header("access-control-allow-origin") is None


@pytest.mark.parametrize("kind", list(REJECTED_EVENTS))
def test_the_handlers_own_400s_are_counted_like_every_request(
    api_handler: Handler, emf_lines: list[str], kind: str
) -> None:
    # given: a container whose first request is one of them
    metrics.reset_cold_start()

    # when
    rejected = invoke(api_handler, REJECTED_EVENTS[kind]({}))

    # then: in Requests and RequestLatency as a 4xx of no route, after the ColdStart
    assert rejected.status == 400
    written = [json.loads(line) for line in emf_lines]
    assert [metrics.COLD_START in r for r in written] == [True, False]
    request = written[1]
    assert (request[metrics.REQUESTS], request[metrics.REQUEST_LATENCY] >= 0) == (1, True)
    assert (request["Route"], request["StatusClass"]) == (metrics.UNMATCHED_ROUTE, "4xx")
    assert request["Method"] == ("POST" if kind == "undecodable_body" else "GET")
    assert request["Stage"] == get_settings().environment


@pytest.mark.parametrize("kind", list(REJECTED_EVENTS))
def test_the_handlers_own_400s_are_sent_and_logged_with_the_request_trace_id(
    api_handler: Handler, log_lines: list[str], monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # given: a request API Gateway traced, in an invocation Lambda traced (which wins)
    request_root = "1-5759e988-bd862e3fe1be46a994272793"
    invocation_root = "1-67891233-abcdef012345678912345678"
    monkeypatch.delenv(TRACE_ID_ENV, raising=False)
    event = REJECTED_EVENTS[kind]({"X-Amzn-Trace-Id": f"Root={request_root};Sampled=1"})

    # when
    from_the_request = invoke(api_handler, event)
    monkeypatch.setenv(TRACE_ID_ENV, f"Root={invocation_root};Parent=1234567890abcdef;Sampled=1")
    from_the_invocation = invoke(api_handler, event)

    # then: as any of the app's answers is, so the client's report finds the trace
    assert (from_the_request.status, from_the_invocation.status) == (400, 400)
    assert from_the_request.header("x-trace-id") == request_root
    assert from_the_invocation.header("x-trace-id") == invocation_root
    traced = [json.loads(line).get("trace_id") for line in log_lines]
    assert traced == [request_root] * 2 + [invocation_root] * 2  # the warning, the request line
