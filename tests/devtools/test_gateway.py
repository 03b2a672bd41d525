"""The local API Gateway: real HTTP in, HTTP API 2.0 events to the real handler, HTTP out."""

from __future__ import annotations

import base64
import json
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from lambda_app.devtools.gateway import PAYLOAD_LIMIT_BYTES, LambdaHandler
from lambda_app.docs_ui.router import STATIC_DIR
from tests.fixtures.accounts import register_and_login
from tests.fixtures.harness import fresh_container, running_gateway
from tests.fixtures.ports import free_port
from tests.fixtures.serve_process import start_serve, wait_for_health
from tests.handlers.extra_routes import blob_bytes

TOO_LARGE = {"message": "Request Entity Too Large"}
BAD_GATEWAY = {"message": "Internal server error"}


class Spy:
    """Wraps a handler; records what it was called with and how many calls overlapped."""

    def __init__(self, handler: LambdaHandler, *, hold_seconds: float = 0.0) -> None:
        self.handler = handler
        self.hold_seconds = hold_seconds
        self.calls: list[tuple[dict[str, Any], Any]] = []
        self.threads: set[str] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.calls.append((event, context))
            self.threads.add(threading.current_thread().name)
        try:
            if self.hold_seconds:
                time.sleep(self.hold_seconds)  # widen the window in which calls could overlap
            return self.handler(event, context)
        finally:
            with self._lock:
                self.in_flight -= 1


@pytest.fixture
def api_handler() -> Iterator[LambdaHandler]:
    with fresh_container():
        from lambda_app.handlers.api import handler

        yield handler


@pytest.fixture
def echo_app_handler() -> Iterator[LambdaHandler]:
    with fresh_container():
        from lambda_app.handlers.api import make_handler
        from tests.handlers.extra_routes import app_with_test_routes

        yield make_handler(app_with_test_routes())


@pytest.fixture
def gateway(api_handler: LambdaHandler) -> Iterator[httpx.Client]:
    """An httpx client on the gateway in front of the real handler."""
    with running_gateway(api_handler) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


async def test_register_login_and_me_through_the_real_handler(api_handler: LambdaHandler) -> None:
    with running_gateway(api_handler) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as gateway:
            account = await register_and_login(gateway, prefix="gw")

            me = await gateway.get("/api/users/me", headers=account.headers)

    assert me.status_code == 200, me.text
    assert me.json()["username"] == account.username
    assert me.headers["content-type"] == "application/json"
    uuid.UUID(me.headers["x-request-id"])  # the Lambda request id: a UUID
    assert me.headers["apigw-requestid"]


def test_the_event_looks_like_api_gateway_http_api_2(echo_app_handler: LambdaHandler) -> None:
    spy = Spy(echo_app_handler)
    body = blob_bytes(1000)
    with running_gateway(spy) as url, httpx.Client(base_url=url) as client:
        response = client.post(
            "/api/_test/echo?tag=a&tag=b%2Cc",
            content=body,
            headers={
                "Content-Type": "application/octet-stream",
                "Cookie": "session=abc; theme=dark",
                "User-Agent": "gateway-test/1.0",
                "X-Custom": "one",
            },
        )
        text = client.put("/api/_test/echo", json={"a": "ü"})

    assert response.status_code == 200
    (event, context), (text_event, _) = spy.calls
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/api/_test/echo"
    assert event["rawQueryString"] == "tag=a&tag=b%2Cc"
    assert event["queryStringParameters"] == {"tag": "a,b,c"}
    assert event["cookies"] == ["session=abc", "theme=dark"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-custom"] == "one"
    assert event["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert all(name == name.lower() for name in event["headers"])
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body
    request_context = event["requestContext"]
    assert request_context["stage"] == "$default"
    assert request_context["domainName"] == "127.0.0.1"
    assert request_context["requestId"] == response.headers["apigw-requestid"]
    assert request_context["http"] == {
        "method": "POST",
        "path": "/api/_test/echo",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "gateway-test/1.0",
    }
    assert abs(request_context["timeEpoch"] / 1000 - time.time()) < 3600
    # the context carries the Lambda request id, which the app returns as x-request-id
    assert context.aws_request_id == response.headers["x-request-id"]
    assert 0 < context.get_remaining_time_in_millis() <= 30_000
    assert context.function_name and context.memory_limit_in_mb > 0
    # JSON is text: passed as is, not base64
    assert text_event["isBase64Encoded"] is False
    assert json.loads(text_event["body"]) == {"a": "ü"}
    assert text.json()["method"] == "PUT"
    # and the app saw the request as sent
    echo = response.json()
    assert echo["query"] == [["tag", "a"], ["tag", "b,c"]]
    assert echo["cookies"] == {"session": "abc", "theme": "dark"}
    assert base64.b64decode(echo["body_b64"]) == body


def test_the_path_arrives_percent_decoded_as_from_an_http_api(
    echo_app_handler: LambdaHandler,
) -> None:
    spy = Spy(echo_app_handler)
    with running_gateway(spy) as url, httpx.Client(base_url=url) as client:
        segment = client.get("/api/_test/segment/a%2541%20b")
        health = client.get("/api/h%65alth")

    (event, _), _ = spy.calls
    assert event["rawPath"] == event["requestContext"]["http"]["path"]
    assert event["rawPath"] == "/api/_test/segment/a%41 b"
    assert segment.status_code == 200 and segment.json() == {"segment": "a%41 b"}
    assert health.status_code == 200 and health.json() == {"status": "ok"}


def test_several_set_cookie_headers(echo_app_handler: LambdaHandler) -> None:
    with running_gateway(echo_app_handler) as url, httpx.Client(base_url=url) as client:
        response = client.get("/api/_test/cookies")

    assert response.status_code == 204
    cookies = sorted(response.headers.get_list("set-cookie"))
    assert len(cookies) == 2
    assert cookies[0].startswith("session=s3ss10n;") and cookies[1].startswith("theme=dark;")


def test_binary_response_is_decoded(gateway: httpx.Client) -> None:
    favicon = gateway.get("/api/doc/static/favicon-32x32.png")

    assert favicon.status_code == 200
    assert favicon.headers["content-type"] == "image/png"
    assert favicon.content == (STATIC_DIR / "favicon-32x32.png").read_bytes()


def test_head_has_headers_and_no_body(gateway: httpx.Client) -> None:
    # (a static file: the route Starlette answers HEAD on by itself)
    get = gateway.get("/api/doc/static/favicon-32x32.png")
    head = gateway.head("/api/doc/static/favicon-32x32.png")

    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(get.content))


def test_chunked_request_body(echo_app_handler: LambdaHandler) -> None:
    body = blob_bytes(50_000)  # under the app's own body limit

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 16_384):
            yield body[start : start + 16_384]

    with running_gateway(echo_app_handler) as url, httpx.Client(base_url=url) as client:
        response = client.post(
            "/api/_test/echo",
            content=chunks(),
            headers={"Content-Type": "application/octet-stream"},
        )

    assert response.status_code == 200
    assert base64.b64decode(response.json()["body_b64"]) == body


def test_chunked_request_bodies_over_the_limit_or_malformed(api_handler: LambdaHandler) -> None:
    spy = Spy(api_handler)

    def chunks() -> Iterator[bytes]:
        for _ in range(PAYLOAD_LIMIT_BYTES // 65_536 + 1):  # just over 6 MB in total
            yield b"x" * 65_536

    with running_gateway(spy) as url:
        with httpx.Client(base_url=url, timeout=60) as client:
            too_big = client.post("/api/auth/register", content=chunks())
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(
                b"POST /api/auth/register HTTP/1.1\r\nHost: x\r\n"
                b"Transfer-Encoding: chunked\r\n\r\nnot-hex\r\nabc\r\n0\r\n\r\n"
            )
            malformed = b""
            for _ in range(100):  # the gateway closes the connection after answering
                received = sock.recv(65_536)
                if not received:
                    break
                malformed += received

    assert too_big.status_code == 413 and too_big.json() == TOO_LARGE
    assert malformed.startswith(b"HTTP/1.1 400 ")  # from the HTTP server, before any event
    assert spy.calls == []


def test_requests_over_the_6_mb_limit_get_413_from_the_gateway(api_handler: LambdaHandler) -> None:
    spy = Spy(api_handler)
    with running_gateway(spy) as url, httpx.Client(base_url=url, timeout=60) as client:
        # when: a body over 6 MB; a binary body whose base64 form pushes the event over
        # 6 MB; and a text body under the limit, which reaches the function
        too_big = client.post(
            "/api/auth/register",
            content=b"x" * (PAYLOAD_LIMIT_BYTES + 1),
            headers={"Content-Type": "application/json"},
        )
        inflated = client.post(
            "/api/auth/register",
            content=b"\xff" * (5 * 1024 * 1024),
            headers={"Content-Type": "application/octet-stream"},
        )
        calls_before_text = len(spy.calls)
        under = client.post(
            "/api/auth/register",
            content=b"x" * (5 * 1024 * 1024),
            headers={"Content-Type": "application/json"},
        )
        after = client.get("/api/health")

    # then: API Gateway's 413 for the first two, without invoking the function
    assert too_big.status_code == 413 and too_big.json() == TOO_LARGE
    assert inflated.status_code == 413 and inflated.json() == TOO_LARGE
    assert calls_before_text == 0
    # the third is refused by the app's own, smaller limit, in the app's error shape
    assert under.status_code == 413
    assert under.json()["error"]["code"] == "payload_too_large"
    assert after.status_code == 200  # and the gateway keeps serving
    assert len(spy.calls) == 2


def test_responses_over_the_6_mb_limit_get_502(echo_app_handler: LambdaHandler) -> None:
    # 4 MB of binary is 5.3 MB as base64: fits. 5 MB is 6.7 MB as base64: too large.
    with (
        running_gateway(echo_app_handler) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        fits = client.get("/api/_test/blob", params={"size": 4 * 1024 * 1024})
        too_large = client.get("/api/_test/blob", params={"size": 5 * 1024 * 1024})
        after = client.get("/api/health")

    assert fits.status_code == 200
    assert fits.content == blob_bytes(4 * 1024 * 1024)
    assert too_large.status_code == 502 and too_large.json() == BAD_GATEWAY
    assert after.status_code == 200


def _raises(event: dict[str, Any], context: Any) -> Any:
    raise RuntimeError("function crashed")


@pytest.mark.parametrize(
    ("handler", "status", "body"),
    [
        pytest.param(_raises, 502, BAD_GATEWAY, id="function-error"),
        pytest.param(lambda e, c: {"statusCode": "teapot"}, 502, BAD_GATEWAY, id="bad-status"),
        pytest.param(
            lambda e, c: {"statusCode": 200, "body": "%%%", "isBase64Encoded": True},
            502,
            BAD_GATEWAY,
            id="bad-base64",
        ),
        pytest.param(
            lambda e, c: {"statusCode": 200, "body": {"a": 1}}, 502, BAD_GATEWAY, id="body-not-str"
        ),
        pytest.param(
            lambda e, c: {"statusCode": 200, "headers": {"x-a": "1\r\nx-b: 2"}},
            502,
            BAD_GATEWAY,
            id="header-with-line-break",
        ),
        pytest.param(lambda e, c: {"hello": "world"}, 200, {"hello": "world"}, id="no-status-code"),
        pytest.param(
            lambda e, c: {
                "statusCode": 201,
                "headers": {"content-type": "application/json"},
                "body": "[1]",
            },
            201,
            [1],
            id="valid",
        ),
    ],
)
def test_function_results_are_translated_as_api_gateway_does(
    handler: LambdaHandler, status: int, body: Any
) -> None:
    with running_gateway(handler) as url, httpx.Client(base_url=url) as client:
        response = client.get("/anything")

    assert response.status_code == status
    assert response.json() == body


def test_invocations_are_serialized_like_one_container(api_handler: LambdaHandler) -> None:
    spy = Spy(api_handler, hold_seconds=0.02)
    limits = httpx.Limits(max_connections=8)
    with running_gateway(spy) as url, httpx.Client(base_url=url, limits=limits) as client:

        def call(_: int) -> int:
            return client.get("/api/health").status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(call, range(16)))

    assert statuses == [200] * 16
    assert len(spy.calls) == 16
    assert spy.max_in_flight == 1
    assert len(spy.threads) == 1  # always the same thread: the handler's event loop's


def test_named_stage(api_handler: LambdaHandler) -> None:
    with running_gateway(api_handler, stage="prod") as url, httpx.Client(base_url=url) as client:
        health = client.get("/prod/api/health")
        schema = client.get("/prod/api/openapi.json")
        outside = client.get("/api/health")

    assert health.status_code == 200
    assert schema.json()["servers"] == [{"url": "/prod"}]
    assert outside.status_code == 404 and outside.json() == {"message": "Not Found"}


def test_cli_serve_lambda_runs_the_gateway(database_url_for_tests: str) -> None:
    port = free_port()
    username = f"cli_{uuid.uuid4().hex[:12]}"
    password = f"pw-{uuid.uuid4().hex}"
    process = start_serve(
        database_url_for_tests, "--lambda", port=port, username=username, password=password
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            health = wait_for_health(process, port, timeout=30)
            assert health is not None, "the gateway did not start"
            token = client.post(
                "/api/auth/token", data={"username": username, "password": password}
            )
            me = client.get(
                "/api/users/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
            )
    finally:
        # `kill` (SIGTERM) stops it as cleanly as Ctrl-C: the gateway returns and the
        # CLI exits 0 after its clean-up (with an embedded database: stopping it).
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)

    assert process.returncode == 0, output
    assert health.status_code == 200
    assert "apigw-requestid" in health.headers  # through the gateway, not the app served directly
    assert me.status_code == 200 and me.json()["is_superuser"] is True
    assert "Local API Gateway" in output
    assert password not in output
