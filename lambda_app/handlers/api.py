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
  logged without the body: a warning saying why, then the request log line and metrics
  every request writes (its route `unmatched`). Raised, it would be a function error, which API
  Gateway and ALB answer with a 502 and Lambda counts against the function.
- A Host or X-Forwarded-Port header Mangum can't parse (it reads their ports with
  `int()`) is a 400 `invalid_header`, answered the same way.
- Both carry the CORS headers the app's answers carry (`CORS_ALLOWED_ORIGINS`), so a
  browser client can read them too.
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
import logging
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from mangum import Mangum
from mangum.protocols import HTTPCycle
from mangum.types import ASGI, LambdaContext, Response
from starlette.types import ASGIApp, Scope

from lambda_app.core.snapstart import before_snapshot
from lambda_app.handlers.api_events import (
    UNDECODABLE_BODY,
    LambdaEvent,
    StagePrefixMiddleware,
    rejection,
    scope_of,
    without_server_headers,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

    from lambda_app.core.settings import ApiSettings

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


def make_handler(
    app: ASGIApp, *, base_path: str | None = None, cors_allowed_origins: Collection[str] = ()
) -> LambdaHandler:
    """A Lambda handler serving `app` (tests build one around an app with extra routes).

    `base_path`: the custom domain's API mapping key, if any (`ApiSettings.api_base_path`).
    `cors_allowed_origins`: the app's (`ApiSettings.cors_allowed_origins`), for the answers
    the handler makes itself.
    """
    # Mangum looks the loop up with asyncio.get_event_loop(); making ours current first
    # keeps it the same loop for every invocation, from any thread (the local gateway).
    asyncio.set_event_loop(_container_loop())
    adapter = Mangum(StagePrefixMiddleware(app, base_path=base_path), lifespan="off")

    def answered(scope: Scope, answer: ASGI) -> Response:
        """The handler's own answer, with the CORS headers the app would add."""
        if cors_allowed_origins:
            from lambda_app.core.cors import CorsMiddleware  # loaded by the app already

            answer = CorsMiddleware(answer, allowed_origins=cors_allowed_origins)
        return HTTPCycle(scope, b"")(answer)

    def handle(event: LambdaEvent, context: LambdaContext) -> dict[str, Any]:
        started = time.perf_counter()  # a rejection's duration_ms, as the middleware's
        asyncio.set_event_loop(_container_loop())
        # What `adapter(event, context)` does without lifespan, with the scope and the body
        # made in steps of their own so that failing can be answered (module docstring).
        source = adapter.infer(event, context)  # raises for an event from no HTTP source
        try:
            scope = scope_of(source, event)
        except ValueError as exc:  # Mangum reads Host's and X-Forwarded-Port's ports with int()
            from lambda_app.core.errors import InvalidHeader  # loaded by the app already

            # Answered in the source's format, which Mangum builds from a scope too.
            event = without_server_headers(event)
            source = adapter.infer(event, context)
            try:
                scope = scope_of(source, event)
            except ValueError:  # not those headers after all (a lone surrogate): raised
                raise exc from None
            answer = rejection(
                scope,
                InvalidHeader,
                exc,
                "malformed host or port header",
                base_path=base_path,
                started=started,
            )
            return source(answered(scope, answer))
        try:
            body = source.body
        except UNDECODABLE_BODY as exc:
            from lambda_app.core.errors import UndecodableBody

            answer = rejection(
                scope,
                UndecodableBody,
                exc,
                "undecodable request body",
                base_path=base_path,
                started=started,
            )
            return source(answered(scope, answer))
        return source(HTTPCycle(scope, body)(adapter.app))

    return handle


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
        return make_handler(
            app,
            base_path=settings.api_base_path,
            cors_allowed_origins=settings.cors_allowed_origins,
        )
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
