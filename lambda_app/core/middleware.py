"""The outermost ASGI layer: request and trace ids, body limits, the invocation's deadline,
HEAD served as GET, `Cache-Control: no-store` unless a route sets its own, the request log
line and metrics, last-resort errors.

A plain ASGI middleware (not `BaseHTTPMiddleware`) so it adds no task or
context copy per request and sees every exception the app did not handle.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lambda_app.core.database_errors import is_database_unavailable
from lambda_app.core.deadline import request_deadline
from lambda_app.core.errors import (
    AppError,
    DatabaseUnavailable,
    PayloadTooLarge,
    RequestTimedOut,
    error_body,
)
from lambda_app.core.logging import (
    bind_trace_id,
    invocation_trace_id,
    parse_trace_id,
    unbind_trace_id,
)
from lambda_app.core.request_log import logger, write_request_line_and_metrics
from lambda_app.core.settings import get_settings

REQUEST_ID_HEADER = "x-request-id"
# The X-Ray trace id, returned to the client. Not `x-amzn-trace-id`: `x-amzn-*` headers
# are AWS's own, which API Gateway may overwrite or drop on the way out.
TRACE_ID_HEADER = "x-trace-id"
_TRACE_HEADER = b"x-amzn-trace-id"  # what API Gateway and ALB forward
_JSON_TYPES = ("application/json", "+json")
# Answers hold tokens and accounts' data: no cache, shared or private, keeps one unless
# the route says otherwise (the docs UI's files do).
DEFAULT_CACHE_CONTROL = "no-store"
_NOT_STORED = (b"cache-control", DEFAULT_CACHE_CONTROL.encode())


def request_id_of(scope: Scope) -> str:
    """The id a request is logged and answered with (`x-request-id`)."""
    context = scope.get("aws.context")
    aws_request_id = getattr(context, "aws_request_id", None)
    if aws_request_id:  # on Lambda: the invocation's id, so logs and responses correlate
        return str(aws_request_id)
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            candidate: str = value.decode("latin-1")
            if 0 < len(candidate) <= 128 and candidate.isprintable():
                return candidate
    return uuid.uuid4().hex


def trace_id_of(scope: Scope) -> str | None:
    """Lambda's trace id for this invocation (the one X-Ray records), else the request's."""
    trace_id = invocation_trace_id()
    if trace_id:
        return trace_id
    for name, value in scope.get("headers", []):
        if name == _TRACE_HEADER:
            return parse_trace_id(value.decode("latin-1"))
    return None


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key in JSON object")
    return dict(pairs)


def _json_problem(body: bytes) -> str | None:
    """Why a JSON body is unacceptable, or None. Ambiguous duplicate keys count as invalid.

    The reason never quotes the body: a codec's own message names the offending byte or
    character, which may sit inside a password.
    """
    try:
        parsed = json.loads(body, object_pairs_hook=_reject_duplicate_keys)
        # `"\ud800"` escapes parse to lone surrogates: valid JSON syntax, but not text.
        # Nothing downstream can encode them (Argon2, asyncpg): refused here as a 422.
        json.dumps(parsed, ensure_ascii=False).encode()
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text (byte offset {exc.start})"
    except UnicodeEncodeError:
        return "a string holds a lone surrogate escape (\\ud800 to \\udfff), which is not text"
    except ValueError as exc:  # JSONDecodeError's message is its position, never the text
        return str(exc)
    except RecursionError:  # nested deeper than the parser recurses: a few kB can do it
        return "nested too deeply"
    return None


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, stage: str | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # The metrics' Stage dimension (default: the API's ENVIRONMENT setting).
        self.stage = stage or get_settings().environment

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        request_id = request_id_of(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        trace_id = trace_id_of(scope)
        trace_token = bind_trace_id(trace_id)
        extra_headers = [(REQUEST_ID_HEADER.encode(), request_id.encode())]
        if trace_id:
            extra_headers.append((TRACE_ID_HEADER.encode(), trace_id.encode()))
        status = 500
        response_started = False
        # HTTP asks a server to answer HEAD wherever it answers GET, and FastAPI routes
        # only the methods a route declares: the app serves a HEAD as the GET it stands
        # for, and the client gets that answer's status and headers without its body.
        # Starlette's responses send the body anyway and leave dropping it to the
        # server, which Mangum does not do.
        method = scope.get("method")
        head = method == "HEAD"
        if head:
            scope["method"] = "GET"

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = [*message.get("headers", []), *extra_headers]
                if all(name != b"cache-control" for name, _ in headers):
                    headers.append(_NOT_STORED)
                message = {**message, "headers": headers}
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        async def respond(code: int, error: str, message: str, details: Any = None) -> None:
            payload = json.dumps(error_body(error, message, details)).encode()
            await send_with_request_id(
                {
                    "type": "http.response.start",
                    "status": code,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                    ],
                }
            )
            await send_with_request_id({"type": "http.response.body", "body": payload})

        async def respond_with(error: type[AppError]) -> None:
            await respond(error.status_code, error.code, error.message)

        deadline: asyncio.Timeout | None = None
        try:
            body = await self._read_body(scope, receive)
            if body is None:
                await respond_with(PayloadTooLarge)
            elif body and _is_json(scope) and (problem := _json_problem(body)) is not None:
                await respond(
                    422,
                    "invalid_json",
                    "Request body is not valid JSON",
                    [{"loc": ["body"], "message": problem, "type": "json_invalid"}],
                )
            else:
                async with request_deadline(scope.get("aws.context")) as deadline:
                    await self.app(scope, _replay(body, receive), send_with_request_id)
        except Exception as exc:
            if response_started:
                raise  # too late to answer differently; Mangum/uvicorn log it
            if isinstance(exc, TimeoutError) and deadline is not None and deadline.expired():
                logger.warning(
                    "request deadline passed",
                    exc_info=True,
                    extra={"fields": {"request_id": request_id}},
                )
                await respond_with(RequestTimedOut)
            elif is_database_unavailable(exc):
                logger.warning(
                    "database unavailable",
                    exc_info=True,
                    extra={"fields": {"request_id": request_id}},
                )
                await respond_with(DatabaseUnavailable)
            else:
                logger.exception("unhandled error", extra={"fields": {"request_id": request_id}})
                await respond_with(AppError)  # the base class is the 500 `internal_error`
        finally:
            scope["method"] = method  # the log line and the metrics name what the client sent
            write_request_line_and_metrics(
                scope,
                stage=self.stage,
                status=status,
                duration_ms=(time.perf_counter() - started) * 1000,
                request_id=request_id,
                user_id=state.get("user_id"),
            )
            unbind_trace_id(trace_token)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None when it exceeds the limit."""
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    if int(value) > self.max_body_bytes:
                        return None
                except ValueError:
                    pass
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def media_type(scope: Scope) -> str | None:
    """The request's media type (its Content-Type without parameters, lower-cased)."""
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            sent: str = value.decode("latin-1").split(";", 1)[0].strip().lower()
            return sent
    return None


def _is_json(scope: Scope) -> bool:
    sent = media_type(scope)
    return sent is not None and sent.endswith(_JSON_TYPES)


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the already-read body to the app, then pass through to the server.

    Later calls go to the real `receive`, which blocks until the client really
    disconnects: answering "disconnected" at once would make streaming
    responses (files) abort themselves.
    """
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
