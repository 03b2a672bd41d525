"""A local API Gateway (HTTP API, payload 2.0) in front of the real Lambda handler.

`python -m lambda_app serve --lambda` (`make gateway`): each HTTP request becomes the event
API Gateway would send to `lambda_app.handlers.api.handler`, its result the response. As on
AWS: one invocation at a time (one container), Lambda's 6 MB limit on the event (413) and
the result (502, as for an invalid result or a function error), and a named stage in URLs.

uvicorn does the HTTP (framing, chunked bodies, keep-alive, HEAD); this module translates.
The handler keeps its own event loop, which must stay on one thread: so every invocation
runs on one worker thread, which also makes them one at a time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import secrets
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import h11
import uvicorn
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope, Send

logger = logging.getLogger("lambda_app.gateway")

# Lambda's limit for a synchronous invocation, request and response payload each.
PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024

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
        self._deadline = time.monotonic() + 30.0  # the function's timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[bytes, bytes]]  # as ASGI sends them
    body: bytes


class InvalidFunctionResponse(ValueError):
    """The function's result is not a payload 2.0 response API Gateway could send."""


_NOT_FOUND = HttpResponse(404, [_JSON], b'{"message": "Not Found"}')
_TOO_LARGE = HttpResponse(413, [_JSON], b'{"message": "Request Entity Too Large"}')
_BAD_GATEWAY = HttpResponse(502, [_JSON], b'{"message": "Internal server error"}')


def _join_repeats(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for key, value in pairs:
        joined[key] = f"{joined[key]},{value}" if key in joined else value
    return joined


def _build_event(scope: Scope, body: bytes, *, request_id: str, stage: str) -> dict[str, Any]:
    """The HTTP API payload 2.0 event for the ASGI request `scope` with `body`."""
    raw_path = scope["raw_path"].decode("latin-1") or "/"
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


def _response_from_result(result: Any) -> HttpResponse:
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


class LambdaGateway:
    """An ASGI app for uvicorn: HTTP request → event → `handler` → HTTP response."""

    def __init__(self, handler: LambdaHandler, host: str, port: int, *, stage: str) -> None:
        self.handler = handler
        self.stage = stage
        self._container = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lambda-container")
        # Bound now (port 0: any free one, named by .port); early clients wait in the backlog.
        self.socket = socket.create_server((host, port))
        self.port: int = self.socket.getsockname()[1]
        config = uvicorn.Config(
            self,
            http="h11",  # what _response_from_result() checks headers against
            ws="none",  # upgrade requests are plain HTTP requests, as for an HTTP API
            lifespan="off",
            proxy_headers=False,  # the edge: a client's X-Forwarded-For is forwarded as sent
            server_header=False,  # API Gateway sends none
            log_config=None,  # uvicorn's warnings go through the app's logging,
            log_level="warning",  # and no access lines: the handler logs each request
        )
        self._server = uvicorn.Server(config)

    def serve_forever(self) -> None:
        """Serve until `shutdown()`; on the main thread also until SIGINT or SIGTERM."""
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self.socket.close()
            self._container.shutdown(wait=True)

    def shutdown(self) -> None:
        """Make `serve_forever` finish the requests in flight and return (from any thread)."""
        self._server.should_exit = True  # what uvicorn's own signal handler sets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # (uvicorn runs it with lifespan and WebSockets off: every scope is an HTTP request)
        request_id = base64.b64encode(secrets.token_bytes(11)).decode()  # "JKJaXmPLvHcESHA="
        try:
            response = await self._respond(scope, receive, request_id)
        except ClientDisconnect:
            return  # no one to answer (uvicorn answers malformed framing itself)
        # A HEAD (or 204/304) answer has no body: its content-length, if any, is the one
        # the function declared, a GET's. Otherwise it is the body's, as sent.
        bodiless = scope["method"] == "HEAD" or response.status in (204, 304)
        headers = [h for h in response.headers if bodiless or h[0] != b"content-length"]
        if not bodiless:
            headers.append((b"content-length", str(len(response.body)).encode()))
        headers.append((b"apigw-requestid", request_id.encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if bodiless else response.body})

    async def _respond(self, scope: Scope, receive: Receive, request_id: str) -> HttpResponse:
        path, prefix = scope["raw_path"].decode("latin-1"), f"/{self.stage}"
        if self.stage != "$default" and path != prefix and not path.startswith(prefix + "/"):
            return _NOT_FOUND  # API Gateway routes nothing outside the stage
        body = bytearray()
        async for chunk in Request(scope, receive).stream():
            body += chunk
            if len(body) > PAYLOAD_LIMIT_BYTES:  # its event would be bigger still
                return _TOO_LARGE  # (uvicorn reads and drops the rest)
        event = _build_event(scope, bytes(body), request_id=request_id, stage=self.stage)
        return await asyncio.get_running_loop().run_in_executor(self._container, self.invoke, event)

    def invoke(self, event: dict[str, Any]) -> HttpResponse:
        """One invocation as Lambda makes it: JSON in and out (measured), each at most 6 MB."""
        request_payload = json.dumps(event).encode()
        if len(request_payload) > PAYLOAD_LIMIT_BYTES:
            return _TOO_LARGE  # (a binary body is a third bigger as base64)
        context = LocalLambdaContext()
        log_fields: dict[str, Any] = {"request_id": context.aws_request_id}
        try:
            result = self.handler(json.loads(request_payload), context)
        except Exception:
            logger.exception("function error", extra={"fields": log_fields})
            return _BAD_GATEWAY
        try:
            response_payload = json.dumps(result).encode()
            if len(response_payload) > PAYLOAD_LIMIT_BYTES:
                raise InvalidFunctionResponse(f"payload too large: {len(response_payload)} bytes")
            return _response_from_result(json.loads(response_payload))
        except (TypeError, ValueError) as exc:  # not JSON, too large, or not a response
            log_fields["reason"] = str(exc)
            logger.warning("invalid function response", extra={"fields": log_fields})
            return _BAD_GATEWAY


def serve_gateway(host: str = "127.0.0.1", port: int = 8000, *, stage: str = "$default") -> None:
    """`python -m lambda_app serve --lambda`: the real API handler, until SIGINT or SIGTERM."""
    from lambda_app.handlers.api import handler  # (builds the app)

    gateway = LambdaGateway(handler, host, port, stage=stage)
    prefix = "" if stage == "$default" else f"/{stage}"
    print(
        f"Local API Gateway (HTTP API 2.0 events -> lambda_app.handlers.api.handler) on "
        f"http://{host}:{gateway.port}{prefix}/api"
    )
    # uvicorn stops on SIGINT/SIGTERM, then re-raises the signal: as a KeyboardInterrupt, `kill`
    # returns here like Ctrl-C, and the caller still stops the database.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, _interrupt)
    with contextlib.suppress(KeyboardInterrupt):
        gateway.serve_forever()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
