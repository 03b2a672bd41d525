"""The API Lambda: API Gateway (REST 1.0 / HTTP 2.0), Function URL and ALB events → the app.

Entry point: `lambda_app.handlers.api.handler`.

Built once per container, at import: the FastAPI app (it opens no connection), the
Mangum adapter and the one event loop every warm invocation reuses. The engine stays
lazy (`lambda_app.db.engine.get_engine`), created by the first request that needs it.

`lifespan="off"`: Mangum would otherwise run the ASGI lifespan around every single
invocation, and the app has nothing to start or stop per container anyway.

Events that can't become a request:
- A body that can't be decoded as the event says it is encoded (`isBase64Encoded` over
  text that isn't base64, a body that isn't a string) is answered: a 400
  `undecodable_body` in the shared error shape and the event source's response format,
  logged as one line without the body. Raised, it would be a function error, which API
  Gateway and ALB answer with a 502 and Lambda counts against the function.
- An event Mangum can't attribute to an HTTP source (S3, EventBridge, a console test
  with `{}`) raises. No client waits for an HTTP answer and no response format fits;
  a function error is what tells its invoker (retries, then the DLQ, for asynchronous
  ones) that it reached the wrong function, where a 400 would be a quiet success.
- So does an event that names a source but lacks what that source always sends (no
  `httpMethod`, no `requestContext.http`): no AWS source sends one, and that source's
  response format is built from those same fields.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from mangum import Mangum
from mangum.protocols import HTTPCycle
from mangum.types import LambdaContext, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from lambda_app.core.snapstart import before_snapshot

if TYPE_CHECKING:
    from fastapi import FastAPI

    from lambda_app.core.settings import ApiSettings

LambdaEvent = dict[str, Any]
LambdaHandler = Callable[[LambdaEvent, LambdaContext], dict[str, Any]]

# Mangum logs its own "GET /path 200" line per request; the app's request log line
# (lambda_app.core.middleware) already says that and more, so keep one line per request.
logging.getLogger("mangum.http").setLevel(logging.WARNING)

_loop: asyncio.AbstractEventLoop | None = None


def _container_loop() -> asyncio.AbstractEventLoop:
    """The container's event loop, reused by every warm invocation (as Mangum >= 0.21 does)."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    return _loop


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
    client_path = unquote(client_path)
    if not _is_segment_prefix(client_path, prefix):
        return
    path: str = scope["path"]
    if client_path == path:  # HTTP API (and any mapping key): the routed path keeps the prefix
        scope["root_path"] = prefix
    elif client_path in (prefix + path, prefix + path.rstrip("/")):  # REST API: stage stripped
        scope["root_path"] = prefix
        scope["path"] = prefix + path


def make_handler(app: ASGIApp, *, base_path: str | None = None) -> LambdaHandler:
    """A Lambda handler serving `app` (tests build one around an app with extra routes).

    `base_path`: the custom domain's API mapping key, if any (`ApiSettings.api_base_path`).
    """
    # Mangum looks the loop up with asyncio.get_event_loop(); making ours current first
    # keeps it the same loop for every invocation, from any thread (the local gateway).
    asyncio.set_event_loop(_container_loop())
    adapter = Mangum(StagePrefixMiddleware(app, base_path=base_path), lifespan="off")

    def handle(event: LambdaEvent, context: LambdaContext) -> dict[str, Any]:
        asyncio.set_event_loop(_container_loop())
        # What `adapter(event, context)` does without lifespan, with the body decoded in a
        # step of its own so that failing can be answered (see the module docstring).
        source = adapter.infer(event, context)  # raises for an event from no HTTP source
        scope = source.scope
        try:
            body = source.body
        except _UNDECODABLE_BODY as exc:
            return source(_undecodable_body(scope, context, exc, base_path=base_path))
        return source(HTTPCycle(scope, body)(adapter.app))

    return handle


# What decoding a body raises: binascii.Error (a ValueError) for text that isn't base64,
# ValueError for non-ASCII text, UnicodeEncodeError (one too) for lone surrogates,
# TypeError / AttributeError for a body that isn't a string.
_UNDECODABLE_BODY = (ValueError, TypeError, AttributeError)


def _undecodable_body(
    scope: Scope, context: LambdaContext, error: Exception, *, base_path: str | None
) -> Response:
    """The 400 for a body that can't be decoded, with a log line that leaves the body out."""
    # Loaded by the app already; imported here to keep this module's own imports light.
    from lambda_app.core.errors import UndecodableBody, error_body
    from lambda_app.core.middleware import REQUEST_ID_HEADER, logger

    request_id = str(getattr(context, "aws_request_id", None) or uuid.uuid4().hex)
    # the path as the request log has it
    _apply_stage_prefix(scope, scope["aws.event"], base_path=base_path)
    logger.warning(
        "undecodable request body",
        extra={
            "fields": {
                "method": scope["method"],
                "path": scope["path"],
                "status": UndecodableBody.status_code,
                "request_id": request_id,
                # Not the message: the body's decoder may quote the body.
                "error_type": f"{type(error).__module__}.{type(error).__qualname__}",
            }
        },
    )
    payload = json.dumps(error_body(UndecodableBody.code, UndecodableBody.message))
    return {
        "status": UndecodableBody.status_code,
        "headers": [
            [b"content-type", b"application/json"],
            [REQUEST_ID_HEADER.encode(), request_id.encode()],
        ],
        "body": payload.encode(),
    }


def _build_container_handler() -> LambdaHandler:
    """The container's handler, built with the cyclic garbage collector paused.

    Importing FastAPI, SQLAlchemy and pydantic and building the app allocate over a
    hundred thousand objects that live as long as the container. Every full collection
    during that build would walk all of them again to find next to nothing to free, a
    sizeable share of a cold start (docs/performance.md). Frozen afterwards
    (`gc.freeze`), they are also left out of every later collection, on the warm path too.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        from lambda_app.core.settings import get_settings
        from lambda_app.main import create_app  # the heavy imports: most of a cold start

        settings = get_settings()
        app = create_app(settings)
        before_snapshot(functools.partial(prime_first_request, app, settings))
        return make_handler(app, base_path=settings.api_base_path)
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
        from lambda_app.core.metrics import mark_init_complete

        mark_init_complete()  # the container's InitDuration ends here, not at its first request


def prime_first_request(app: FastAPI, settings: ApiSettings) -> None:
    """With SnapStart, before the snapshot: the one-time work of a container's first
    request that needs no I/O, done once so that no restored container repeats it.

    SQLAlchemy configures its mappers on the first query, and FastAPI builds every
    included router's routes under their prefix on the first request it matches; that
    was about half of the first request's time after a restore. On AWS, the first request
    also imports boto3 and makes its clients (core.aws): boto3 and the files those clients
    read are loaded ahead too, but no client, which would make a TLS context. Lambda runs
    the hook only when it takes a snapshot: an on-demand cold start pays nothing for it.
    """
    from fastapi.routing import iter_route_contexts
    from sqlalchemy.orm import configure_mappers

    from lambda_app.core import aws

    configure_mappers()
    for _ in iter_route_contexts(app.routes):  # listing them builds every router's routes
        pass
    aws.load_clients_ahead(aws_clients_made_on_first_use(settings))
    gc.collect()  # no garbage goes into the snapshot, or into what gc.freeze keeps
    gc.freeze()  # what it built lives as long as the container, like the app


def aws_clients_made_on_first_use(settings: ApiSettings) -> list[str]:
    """The boto3 clients (`core.aws.client`) this configuration makes when first needed."""
    from lambda_app.core.settings import EmailBackend

    uses = {
        "rds": settings.db_iam_auth,  # signing IAM auth tokens (db.iam)
        # the JWT keys (identity.signing_key), the database secret (db.secret)
        "secretsmanager": bool(settings.jwt_secret_arn or settings.db_secret_arn),
        "sesv2": settings.mail_backend is EmailBackend.SES,  # mail.backends
    }
    return [service for service, used in uses.items() if used]


handler: LambdaHandler = _build_container_handler()
