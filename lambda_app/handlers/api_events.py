"""What Mangum's reading of the API function's events leaves out or gets wrong.

- The URL prefix a client sees (a named stage, a custom domain's mapping key) becomes the
  ASGI `root_path`: Mangum leaves it empty (`StagePrefixMiddleware`).
- The path is percent-decoded exactly once: Mangum decodes every source's path, HTTP
  APIs' included, which arrive decoded already (`scope_of`).
- The answer, in the source's response format, to an event that can't become a request:
  a body that can't be decoded, a Host or X-Forwarded-Port header with no readable port
  (`rejection`).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from lambda_app.core.errors import AppError

LambdaEvent = dict[str, Any]


def _is_segment_prefix(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


class StagePrefixMiddleware:
    """Expose the URL prefix the client sees (a stage, or a mapping key) as the ASGI `root_path`.

    Behind a named stage the client calls `/prod/api/users/me`. Mangum routes on
    the stage-less path but leaves `root_path` empty, so the docs page would load
    `/api/openapi.json` (a 403 from API Gateway) and the schema would name no server.
    With `root_path="/prod"` and the full client path in `path` (as the ASGI spec
    wants), Starlette routes on the rest and FastAPI publishes `/prod` as the server.

    Behind a custom domain the stage is never in the URL, but an API mapping key may be:
    `https://api.example.com/v1/api/doc` arrives with `/v1/api/doc` in `rawPath` and
    `requestContext.http.path` (the key is removed only for API Gateway's own route
    matching), `domainName` `api.example.com` and stage `$default`. The event doesn't say
    which part of the path is the key, so it comes from a setting (`API_BASE_PATH`,
    `base_path` here, which the stack sets from the mapping it creates).
    """

    def __init__(self, app: ASGIApp, *, base_path: str | None = None) -> None:
        self.app = app
        self.base_path = base_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        event = scope.get("aws.event")
        if scope["type"] == "http" and isinstance(event, dict):
            _apply_stage_prefix(scope, event, base_path=self.base_path)
        await self.app(scope, receive, send)


def _behind_custom_domain(context: dict[str, Any]) -> bool:
    """Called through a domain other than the API's own (`<apiId>.execute-api.…`)."""
    domain, api_id = context.get("domainName"), context.get("apiId")
    return isinstance(domain, str) and bool(api_id) and not domain.startswith(f"{api_id}.")


def _url_prefix(context: dict[str, Any], base_path: str | None) -> str | None:
    if base_path and _behind_custom_domain(context):
        return f"/{base_path}"
    stage = context.get("stage")
    if not stage or stage == "$default":
        return None
    return f"/{stage}"


def _apply_stage_prefix(scope: Scope, event: LambdaEvent, *, base_path: str | None) -> None:
    context = event.get("requestContext") or {}
    prefix = _url_prefix(context, base_path)
    if prefix is None:
        return
    # The path as the client typed it: REST (1.0) keeps it in requestContext.path,
    # HTTP API (2.0) in rawPath; both include the stage when the stage is in the URL,
    # and the mapping key behind a custom domain.
    client_path = event.get("rawPath") if event.get("version") == "2.0" else context.get("path")
    if not isinstance(client_path, str):
        return
    if not _path_arrives_decoded(event):
        client_path = unquote(client_path)
    if not _is_segment_prefix(client_path, prefix):
        return
    path: str = scope["path"]
    if client_path == path:  # HTTP API (and any mapping key): the routed path keeps the prefix
        scope["root_path"] = prefix
    elif client_path in (prefix + path, prefix + path.rstrip("/")):  # REST API: stage stripped
        scope["root_path"] = prefix
        scope["path"] = prefix + path


def _path_arrives_decoded(event: LambdaEvent) -> bool:
    """Whether the event's source percent-decoded the path before handing it over.

    API Gateway HTTP APIs do (payload 2.0's rawPath and requestContext.http.path, 1.0's
    path): a client's `/a%2541` arrives as `/a%41`. REST APIs, Function URLs and ALB
    pass the path as the client encoded it. Of the events with a `version` (HTTP APIs',
    Function URLs'), a Function URL's names its own domain,
    `<id>.lambda-url.<region>.on.aws`.
    """
    context = event.get("requestContext")
    if "version" not in event or not isinstance(context, dict):
        return False
    return ".lambda-url." not in str(context.get("domainName", ""))


def scope_of(source: Any, event: LambdaEvent) -> Scope:
    """Mangum's scope for the event, with its path decoded exactly once."""
    scope: Scope = source.scope
    # Mangum percent-decodes the path of every source (the field it routes on:
    # requestContext.http.path in 2.0, path in 1.0), so a path an HTTP API had already
    # decoded is decoded twice: `/a%41` (the client's `/a%2541`) would be routed as `/aA`.
    if _path_arrives_decoded(event):
        http = event["requestContext"].get("http")
        delivered = http.get("path") if isinstance(http, dict) else event.get("path")
        if isinstance(delivered, str) and "%" in delivered:
            scope["path"] = delivered
    return scope


# What decoding a body raises: binascii.Error (a ValueError) for text that isn't base64,
# ValueError for non-ASCII text, UnicodeEncodeError (one too) for lone surrogates,
# TypeError / AttributeError for a body that isn't a string.
UNDECODABLE_BODY = (ValueError, TypeError, AttributeError)
_SERVER_HEADERS = frozenset({"host", "x-forwarded-port"})


def without_server_headers(event: LambdaEvent) -> LambdaEvent:
    """A copy of the event without its Host and X-Forwarded-Port headers, whatever their case."""
    copy = dict(event)
    for field in ("headers", "multiValueHeaders"):
        if isinstance(headers := event.get(field), dict):
            copy[field] = {k: v for k, v in headers.items() if k.lower() not in _SERVER_HEADERS}
    return copy


def rejection(
    scope: Scope,
    error: type[AppError],
    cause: Exception,
    log_message: str,
    *,
    base_path: str | None,
    started: float,
) -> Response:
    """The answer to an event that can't become a request (an ASGI app), a warning saying
    why, and the request log line and metrics every request writes (no route: `unmatched`).

    The warning names the cause's type, never its message: a body's decoder may quote
    the body, and `int()` the header.
    """
    # Loaded by the app already; imported here to keep this module's own imports light.
    from lambda_app.core.errors import error_body
    from lambda_app.core.logging import bind_trace_id, unbind_trace_id
    from lambda_app.core.middleware import (
        DEFAULT_CACHE_CONTROL,
        REQUEST_ID_HEADER,
        TRACE_ID_HEADER,
        request_id_of,
        trace_id_of,
    )

    # The ids any answer of the app's is logged and sent with.
    request_id, trace_id = request_id_of(scope), trace_id_of(scope)
    headers = {REQUEST_ID_HEADER: request_id, "cache-control": DEFAULT_CACHE_CONTROL}
    if trace_id:
        headers[TRACE_ID_HEADER] = trace_id
    # the path as the request log has it
    _apply_stage_prefix(scope, scope["aws.event"], base_path=base_path)
    trace_token = bind_trace_id(trace_id)
    try:
        _log_rejection(scope, error, cause, log_message, request_id, started)
    finally:
        unbind_trace_id(trace_token)
    return Response(
        json.dumps(error_body(error.code, error.message)),
        status_code=error.status_code,
        headers=headers,
        media_type="application/json",
    )


def _log_rejection(
    scope: Scope,
    error: type[AppError],
    cause: Exception,
    log_message: str,
    request_id: str,
    started: float,
) -> None:
    from lambda_app.core.request_log import logger, write_request_line_and_metrics
    from lambda_app.core.settings import get_settings

    logger.warning(
        log_message,
        extra={
            "fields": {
                "method": scope["method"],
                "path": scope["path"],
                "status": error.status_code,
                "request_id": request_id,
                "error_type": f"{type(cause).__module__}.{type(cause).__qualname__}",
            }
        },
    )
    write_request_line_and_metrics(
        scope,
        stage=get_settings().environment,  # the middleware's Stage dimension
        status=error.status_code,
        duration_ms=(time.perf_counter() - started) * 1000,
        request_id=request_id,
        user_id=None,
    )
