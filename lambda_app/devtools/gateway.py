"""A local API Gateway (HTTP API, payload 2.0) in front of the real Lambda handler.

`python -m lambda_app serve --lambda` (`make gateway`): each HTTP request becomes the event
API Gateway would send to `lambda_app.handlers.api.handler`, its result the response. As on
AWS: one invocation at a time (one container), Lambda's 6 MB limit on the event (413) and
the result (502, as for an invalid result or a function error), and a named stage in URLs,
or (`--base-path v1`) a custom domain's API mapping key in their place: the events then carry
`/v1/...` in `rawPath` and `requestContext.http.path`, as API Gateway's do behind a mapping,
and the handler is told the key through `API_BASE_PATH`, as the stack tells it on AWS.

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
import os
import secrets
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope, Send

from lambda_app.devtools.gateway_events import (
    BAD_GATEWAY,
    NOT_FOUND,
    PAYLOAD_LIMIT_BYTES,
    TOO_LARGE,
    HttpResponse,
    InvalidFunctionResponse,
    LambdaHandler,
    LocalLambdaContext,
    build_event,
    response_from_result,
)

__all__ = ["PAYLOAD_LIMIT_BYTES", "LambdaGateway", "LambdaHandler", "serve_gateway"]

logger = logging.getLogger("lambda_app.gateway")


class LambdaGateway:
    """An ASGI app for uvicorn: HTTP request → event → `handler` → HTTP response."""

    def __init__(
        self,
        handler: LambdaHandler,
        host: str,
        port: int,
        *,
        stage: str,
        base_path: str | None = None,
    ) -> None:
        self.handler = handler
        self.stage = stage
        self.prefix = url_prefix(stage=stage, base_path=base_path)
        self._container = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lambda-container")
        # Bound now (port 0: any free one, named by .port); early clients wait in the backlog.
        self.socket = socket.create_server((host, port))
        self.port: int = self.socket.getsockname()[1]
        config = uvicorn.Config(
            self,
            http="h11",  # what response_from_result() checks headers against
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
        path, prefix = scope["raw_path"].decode("latin-1"), self.prefix
        if prefix and path != prefix and not path.startswith(prefix + "/"):
            return NOT_FOUND  # API Gateway routes nothing outside the stage (or the mapping)
        body = bytearray()
        async for chunk in Request(scope, receive).stream():
            body += chunk
            if len(body) > PAYLOAD_LIMIT_BYTES:  # its event would be bigger still
                return TOO_LARGE  # (uvicorn reads and drops the rest)
        event = build_event(scope, bytes(body), request_id=request_id, stage=self.stage)
        return await asyncio.get_running_loop().run_in_executor(self._container, self.invoke, event)

    def invoke(self, event: dict[str, Any]) -> HttpResponse:
        """One invocation as Lambda makes it: JSON in and out (measured), each at most 6 MB."""
        request_payload = json.dumps(event).encode()
        if len(request_payload) > PAYLOAD_LIMIT_BYTES:
            return TOO_LARGE  # (a binary body is a third bigger as base64)
        context = LocalLambdaContext()
        log_fields: dict[str, Any] = {"request_id": context.aws_request_id}
        try:
            result = self.handler(json.loads(request_payload), context)
        except Exception:
            logger.exception("function error", extra={"fields": log_fields})
            return BAD_GATEWAY
        try:
            response_payload = json.dumps(result).encode()
            if len(response_payload) > PAYLOAD_LIMIT_BYTES:
                raise InvalidFunctionResponse(f"payload too large: {len(response_payload)} bytes")
            return response_from_result(json.loads(response_payload))
        except (TypeError, ValueError) as exc:  # not JSON, too large, or not a response
            log_fields["reason"] = str(exc)
            logger.warning("invalid function response", extra={"fields": log_fields})
            return BAD_GATEWAY


def url_prefix(*, stage: str, base_path: str | None) -> str:
    """What precedes `/api` in the client's URL: a mapping key, else a named stage, else ''."""
    if base_path and base_path.strip("/"):
        return "/" + base_path.strip("/")  # behind a custom domain the stage is not in the URL
    return "" if stage == "$default" else f"/{stage}"


def serve_gateway(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    stage: str = "$default",
    base_path: str | None = None,
) -> None:
    """`python -m lambda_app serve --lambda`: the real API handler, until SIGINT or SIGTERM."""
    if base_path:
        # What the stack sets on the function when it maps a custom domain with a key.
        os.environ["API_BASE_PATH"] = base_path
        from lambda_app.core.settings import get_settings

        get_settings.cache_clear()
    from lambda_app.handlers.api import handler  # (builds the app)

    gateway = LambdaGateway(handler, host, port, stage=stage, base_path=base_path)
    print(
        f"Local API Gateway (HTTP API 2.0 events -> lambda_app.handlers.api.handler) on "
        f"http://{host}:{gateway.port}{gateway.prefix}/api"
    )
    # uvicorn stops on SIGINT/SIGTERM, then re-raises the signal: as a KeyboardInterrupt, `kill`
    # returns here like Ctrl-C, and the caller still stops the database.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, _interrupt)
    with contextlib.suppress(KeyboardInterrupt):
        gateway.serve_forever()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
