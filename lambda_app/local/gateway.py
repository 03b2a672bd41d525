"""A local API Gateway (HTTP API, payload 2.0) in front of the real Lambda handler.

`python -m lambda_app serve --lambda` (`make gateway`) serves on localhost: each HTTP
request becomes the event API Gateway would send, the real
`lambda_app.handlers.api.handler` is called with a Lambda-like context, and its result
becomes the HTTP response again. So curl or a browser exercise exactly the code path
that runs on AWS, without Docker or SAM.

What it keeps from the real thing:
- the payload 2.0 event: rawPath/rawQueryString, lower-cased headers (repeats joined
  with commas), `cookies`, a request context (requestId, stage, http.*, timeEpoch,
  domainName), bodies base64-encoded unless they are text;
- one invocation at a time, like one Lambda container;
- Lambda's 6 MB synchronous payload limit, measured on the serialized event and result:
  413 `{"message": "Request Entity Too Large"}` for a request whose event is too big,
  502 `{"message": "Internal server error"}` for a result that is too big, invalid, or
  a function error;
- with a named stage (`stage="prod"`), URLs carry the stage (`/prod/api/...`) and other
  paths get API Gateway's 404 `{"message": "Not Found"}`.

Why `http.server` (standard library) rather than uvicorn: API Gateway → Lambda is a
synchronous request/response hop, which a blocking handler models directly. The
handler is synchronous and runs its own event loop (Mangum), so inside uvicorn's
running loop it would need a thread hop anyway. And this module then needs no
development-only dependency. ThreadingHTTPServer accepts a browser's parallel
connections; the invocations themselves go through one worker thread, so the handler
runs one request at a time and always on the same thread (its event loop's).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import signal
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

logger = logging.getLogger("lambda_app.gateway")

# Lambda's limit for a synchronous invocation, request and response payload each.
PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024
# HTTP API's own request cap: bodies up to here are read (and dropped) to answer 413
# cleanly; anything bigger gets its connection closed unread.
_DRAIN_LIMIT_BYTES = 10 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024

_TOO_LARGE = (413, {"message": "Request Entity Too Large"})
_BAD_GATEWAY = (502, {"message": "Internal server error"})
_NOT_FOUND = (404, {"message": "Not Found"})
_BAD_REQUEST = (400, {"message": "Bad Request"})

# Request headers that describe this hop, not the request API Gateway forwards.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "expect", "upgrade"})
# Response headers about the connection, which the gateway manages itself.
_RESPONSE_FRAMING = frozenset({"transfer-encoding", "connection", "keep-alive"})
_TEXT_TYPES = ("application/json", "application/xml", "application/javascript")
_TEXT_SUFFIXES = ("+json", "+xml")

LambdaHandler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LocalLambdaContext:
    """What the Lambda runtime passes as `context` (the attributes Mangum and the app read)."""

    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_name: str = "lambda-app-api"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    timeout_seconds: float = 30.0
    identity: None = None
    client_context: None = None
    invoked_function_arn: str = field(init=False)
    log_group_name: str = field(init=False)
    log_stream_name: str = field(init=False)
    _deadline: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        )
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = (
            f"{time.strftime('%Y/%m/%d', time.gmtime())}/[$LATEST]{uuid.uuid4().hex}"
        )
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class InvalidFunctionResponse(ValueError):
    """The function's result is not a payload 2.0 response API Gateway could send."""


def _gateway_error(status: int, payload: dict[str, str]) -> HttpResponse:
    return HttpResponse(
        status, [("content-type", "application/json")], json.dumps(payload).encode()
    )


def is_text(content_type: str | None) -> bool:
    """Whether API Gateway passes a body of this type as text rather than base64."""
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return (
        media_type.startswith("text/")
        or media_type in _TEXT_TYPES
        or media_type.endswith(_TEXT_SUFFIXES)
    )


def _random_api_gateway_id() -> str:
    return base64.b64encode(secrets.token_bytes(11)).decode()  # like "JKJaXmPLvHcESHA="


def build_event(
    *,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    stage: str = "$default",
) -> dict[str, Any]:
    """The HTTP API payload 2.0 event for one request (`target`: path and query as sent)."""
    raw_path, _, raw_query = target.partition("?")
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "cookie":  # API Gateway moves cookies out of the headers
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
        elif key not in _HOP_BY_HOP:
            joined[key] = f"{joined[key]},{value}" if key in joined else value
    domain_name = joined.get("host", "localhost").rsplit(":", 1)[0]
    now = time.time()
    joined.setdefault("x-forwarded-for", source_ip)
    joined.setdefault("x-forwarded-proto", "http")
    joined.setdefault("x-amzn-trace-id", f"Root=1-{int(now):08x}-{secrets.token_hex(12)}")
    if ":" in joined.get("host", ""):
        joined.setdefault("x-forwarded-port", joined["host"].rsplit(":", 1)[1])

    query_params: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query_params[key] = f"{query_params[key]},{value}" if key in query_params else value

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path or "/",
        "rawQueryString": raw_query,
        "headers": joined,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": domain_name,
            "domainPrefix": domain_name.split(".", 1)[0],
            "http": {
                "method": method,
                "path": raw_path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent", ""),
            },
            "requestId": _random_api_gateway_id(),
            "routeKey": "$default",
            "stage": stage,
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if query_params:
        event["queryStringParameters"] = query_params
    if body:
        text = None
        if is_text(joined.get("content-type")):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is None:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
        else:
            event["body"] = text
    return event


def _header_value(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidFunctionResponse(f"header value {value!r} is not a string")
    text = str(value)
    if "\r" in text or "\n" in text:
        raise InvalidFunctionResponse("header value contains a line break")
    return text


def response_from_result(result: Any) -> HttpResponse:
    """Turn a function result into HTTP as API Gateway does for payload 2.0."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # Payload 2.0: any JSON result without a statusCode is a 200 JSON body.
        return HttpResponse(
            200, [("content-type", "application/json")], json.dumps(result).encode()
        )
    status = result["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise InvalidFunctionResponse(f"statusCode {status!r} is not an HTTP status")
    raw_headers = result.get("headers") or {}
    raw_cookies = result.get("cookies") or []
    if not isinstance(raw_headers, dict) or not isinstance(raw_cookies, list):
        raise InvalidFunctionResponse("headers must be an object and cookies a list")
    headers = [
        (str(name).lower(), _header_value(value))
        for name, value in raw_headers.items()
        if str(name).lower() not in _RESPONSE_FRAMING
    ]
    headers += [("set-cookie", _header_value(cookie)) for cookie in raw_cookies]
    body = result.get("body")
    if body is None:
        payload = b""
    elif not isinstance(body, str):
        raise InvalidFunctionResponse("body must be a string")
    elif result.get("isBase64Encoded"):
        try:
            payload = base64.b64decode(body, validate=True)
        except binascii.Error as exc:
            raise InvalidFunctionResponse("body is not valid base64") from exc
    else:
        payload = body.encode("utf-8")
    if not any(name == "content-type" for name, _ in headers) and payload:
        headers.append(("content-type", "application/json"))
    return HttpResponse(status, headers, payload)


class LambdaGateway:
    """Serializes invocations of `handler` on one worker thread, like one Lambda container."""

    def __init__(self, handler: LambdaHandler, *, stage: str = "$default") -> None:
        self.handler = handler
        self.stage = stage
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lambda-container")

    def close(self) -> None:
        self._worker.shutdown(wait=True)

    def route(self, target: str) -> bool:
        """Whether API Gateway would route `target` to the function at all."""
        if self.stage == "$default":
            return True
        path = target.partition("?")[0]
        return path == f"/{self.stage}" or path.startswith(f"/{self.stage}/")

    def invoke(self, event: dict[str, Any]) -> HttpResponse:
        # Lambda receives and returns JSON: round-trip both to measure and validate them.
        request_payload = json.dumps(event).encode()
        if len(request_payload) > PAYLOAD_LIMIT_BYTES:
            logger.warning(
                "request payload too large",
                extra={"fields": {"payload_bytes": len(request_payload)}},
            )
            return _gateway_error(*_TOO_LARGE)
        context = LocalLambdaContext()
        future = self._worker.submit(self.handler, json.loads(request_payload), context)
        try:
            result = future.result()
        except Exception:
            logger.exception(
                "function error", extra={"fields": {"request_id": context.aws_request_id}}
            )
            return _gateway_error(*_BAD_GATEWAY)
        try:
            response_payload = json.dumps(result).encode()
        except (TypeError, ValueError):
            logger.exception("function result is not JSON")
            return _gateway_error(*_BAD_GATEWAY)
        if len(response_payload) > PAYLOAD_LIMIT_BYTES:
            logger.warning(
                "response payload too large",
                extra={
                    "fields": {
                        "payload_bytes": len(response_payload),
                        "request_id": context.aws_request_id,
                    }
                },
            )
            return _gateway_error(*_BAD_GATEWAY)
        try:
            response = response_from_result(json.loads(response_payload))
        except InvalidFunctionResponse as exc:
            logger.warning(
                "invalid function response",
                extra={"fields": {"reason": str(exc), "request_id": context.aws_request_id}},
            )
            return _gateway_error(*_BAD_GATEWAY)
        return response


class _BodyTooLarge(Exception):
    pass


class _MalformedBody(Exception):
    pass


class _GatewayRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as browsers expect
    server: GatewayServer

    def _proxy(self) -> None:
        gateway = self.server.gateway
        if not gateway.route(self.path):
            self._drain_body()
            self._send(_gateway_error(*_NOT_FOUND))
            return
        try:
            body = self._read_body()
        except _BodyTooLarge:
            self._send(_gateway_error(*_TOO_LARGE))
            return
        except _MalformedBody:
            self.close_connection = True
            self._send(_gateway_error(*_BAD_REQUEST))
            return
        event = build_event(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            stage=gateway.stage,
        )
        response = gateway.invoke(event)
        self._send(response, request_id=event["requestContext"]["requestId"])

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _proxy

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            return self._read_chunked()
        length = self._content_length()
        if length > PAYLOAD_LIMIT_BYTES:  # the event would be bigger still
            self._discard(length)
            raise _BodyTooLarge
        return self.rfile.read(length) if length else b""

    def _content_length(self) -> int:
        try:
            return max(0, int(self.headers.get("content-length", "0")))
        except ValueError:
            return 0

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                chunk_size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise _MalformedBody from exc
            if chunk_size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            size += chunk_size
            if size > PAYLOAD_LIMIT_BYTES:
                self.close_connection = True  # the rest of the stream stays unread
                raise _BodyTooLarge
            chunks.append(self.rfile.read(chunk_size))
            self.rfile.readline(1024)  # the CRLF after each chunk
        return b"".join(chunks)

    def _drain_body(self) -> None:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            self.close_connection = True
        else:
            self._discard(self._content_length())

    def _discard(self, length: int) -> None:
        if length > _DRAIN_LIMIT_BYTES:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, _CHUNK_BYTES))
            if not chunk:
                break
            length -= len(chunk)

    def _send(self, response: HttpResponse, *, request_id: str | None = None) -> None:
        declared_length = None
        self.send_response(response.status)
        for name, value in response.headers:
            if name == "content-length":
                declared_length = value
                continue
            self.send_header(name, value)
        self.send_header("apigw-requestid", request_id or _random_api_gateway_id())
        if self.command == "HEAD" and declared_length and declared_length.isdigit():
            # No body to measure: the length a GET would have, as the function declared it.
            self.send_header("content-length", declared_length)
        else:
            self.send_header("content-length", str(len(response.body)))
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        # The handler already logs one JSON line per request; http.server's access
        # line would only duplicate it. Errors still arrive through log_error.
        pass

    def log_error(self, format: str, *args: Any) -> None:
        logger.warning("gateway: " + format, *args)


class GatewayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], gateway: LambdaGateway) -> None:
        self.gateway = gateway
        super().__init__(address, _GatewayRequestHandler)

    def server_close(self) -> None:
        super().server_close()
        self.gateway.close()


def make_gateway_server(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    handler: LambdaHandler | None = None,
    stage: str = "$default",
) -> GatewayServer:
    """A bound, not yet serving gateway in front of `handler` (default: the real API handler)."""
    if handler is None:
        from lambda_app.handlers.api import handler as api_handler

        handler = api_handler
    return GatewayServer((host, port), LambdaGateway(handler, stage=stage))


def serve_gateway(host: str = "127.0.0.1", port: int = 8000, *, stage: str = "$default") -> None:
    """Serve until interrupted (`python -m lambda_app serve --lambda`)."""
    server = make_gateway_server(host, port, stage=stage)
    prefix = "" if stage == "$default" else f"/{stage}"
    print(
        f"Local API Gateway (HTTP API 2.0 events -> lambda_app.handlers.api.handler) on "
        f"http://{host}:{server.server_address[1]}{prefix}/api"
    )
    # Ctrl-C and `kill` both end serve_forever, so the caller stops the database after
    # us. Explicit handlers: Python leaves SIGINT ignored when it starts ignored (a
    # background job), and SIGTERM would otherwise kill us without any clean-up.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
