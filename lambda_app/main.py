"""The FastAPI application: one factory, used by uvicorn locally and by Mangum on Lambda.

Building the app opens no connection: the engine is created on the first request
that needs it, once per process.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from lambda_app.auth.router import router as auth_router
from lambda_app.core.cors import CorsMiddleware
from lambda_app.core.errors import AppError, add_error_schemas, error_body, error_response
from lambda_app.core.logging import configure_logging
from lambda_app.core.metrics import route_template
from lambda_app.core.middleware import RequestContextMiddleware, media_type
from lambda_app.core.settings import ApiSettings, get_settings
from lambda_app.docs_ui.router import OPENAPI_PATH, STATIC_DIR, STATIC_PATH, WholeFiles
from lambda_app.docs_ui.router import router as docs_router
from lambda_app.health.router import router as health_router
from lambda_app.users.router import router as users_router

API_PREFIX = "/api"
_HTTP_ERROR_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return JSONResponse(
        error_body(exc.code, exc.detail_message, list(exc.details) or None),
        status_code=exc.status_code,
        headers=exc.headers,
    )


# A body of unknown keys has an error per key: listing them all would answer 64 kB with
# 0.8 MB, and a larger body limit could pass Lambda's 6 MB response limit (a 5xx).
MAX_ERROR_DETAILS = 20


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if expected := await _expected_media_type(request, exc):
        return JSONResponse(
            error_body("unsupported_media_type", f"Send the body as {expected}"), status_code=415
        )
    errors = exc.errors()
    # The offending input is deliberately left out: it may be a password.
    details: list[dict[str, Any]] = [
        {
            "loc": list(error.get("loc", ())),
            "message": error.get("msg", ""),
            "type": error.get("type", ""),
        }
        for error in errors[:MAX_ERROR_DETAILS]
    ]
    if len(errors) > MAX_ERROR_DETAILS:
        unlisted = len(errors) - MAX_ERROR_DETAILS
        details.append({"loc": [], "message": f"{unlisted} more not listed", "type": "truncated"})
    invalid_json = any(d["type"] == "json_invalid" for d in details)
    code, message = (
        ("invalid_json", "Request body is not valid JSON")
        if invalid_json
        else ("validation_error", "The request is invalid")
    )
    return JSONResponse(error_body(code, message, details), status_code=422)


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def _expected_media_type(request: Request, exc: RequestValidationError) -> str | None:
    """The media type the operation reads its body as, when the request sent another.

    FastAPI parses a body only from the media type the operation reads: a JSON operation
    gets any other body as bytes (curl's `-d` sends a form), a form operation an empty
    form. Either then fails validation as "not an object" or "field required", which
    hides the cause.
    """
    if isinstance(exc.body, bytes) and exc.body:
        return "application/json"
    if isinstance(exc.body, FormData):
        sent = media_type(request.scope)
        # With no Content-Type, Starlette leaves the body unread: a body there was not
        # read as a form, while no body at all is just a form without its fields.
        if (sent and sent not in _FORM_TYPES) or (not sent and await request.body()):
            return "application/x-www-form-urlencoded"
    return None


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_ERROR_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
    headers = exc.headers
    if exc.status_code == 405 and (allow := _allow(request)):
        headers = {**(headers or {}), "Allow": allow}
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=headers)


def _allow(request: Request) -> str | None:
    """Every method the request's path template serves, for a 405's `Allow`.

    Starlette's own `Allow` names the methods of the first route matching the path only:
    `GET` on /api/users/me, which PATCH also serves. Built on the first 405, once per app.
    """
    state = request.app.state
    allow_by_path: dict[str, str] | None = getattr(state, "allow_by_path", None)
    if allow_by_path is None:
        methods: dict[str, set[str]] = {}
        for route in iter_route_contexts(request.app.routes):  # with the routers' prefixes
            if route.path_format and route.methods:
                methods.setdefault(route.path_format, set()).update(route.methods)
        for names in methods.values():
            if "GET" in names:
                names.add("HEAD")  # served as the GET (core.middleware)
        allow_by_path = {path: ", ".join(sorted(names)) for path, names in methods.items()}
        state.allow_by_path = allow_by_path
    return allow_by_path.get(route_template(request.scope))


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    app = FastAPI(
        title="lambda_app",
        summary="Users and authentication API",
        version="0.1.0",
        openapi_url=OPENAPI_PATH,
        docs_url=None,  # served from the package by docs_router
        redoc_url=None,
        # `/api/users/` is a 404 like any unknown path, not a 307 to the path without the
        # slash: its Location is built from the Host header, and a client following it
        # would post the token form, password and all, to wherever that names.
        redirect_slashes=False,
        # Errors any operation can answer, in the shared shape.
        responses={
            413: error_response("`payload_too_large`"),
            422: error_response("`validation_error` / `invalid_json`"),
            500: error_response("`internal_error`"),
            503: error_response("`database_unavailable` / `request_timeout`"),
        },
    )
    # Each domain router goes in with the prefix itself, not through an "/api" router:
    # FastAPI checks the paths of a router included without a prefix by building every
    # nested route once more, work a cold start would pay for nothing.
    for router in (health_router, auth_router, users_router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(docs_router)
    app.mount(STATIC_PATH, WholeFiles(directory=STATIC_DIR), name="docs-static")

    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_request_body_bytes)
    if settings.cors_allowed_origins:  # otherwise nothing on the request path at all
        # Added last, so outside RequestContextMiddleware: the errors it answers itself
        # (413, invalid JSON, 500, 503) carry the CORS headers too, or a browser could not
        # read them. The price: a preflight it answers gets no request log line.
        app.add_middleware(CorsMiddleware, allowed_origins=settings.cors_allowed_origins)
    _document_error_schemas(app)
    _record_plain_routes(app)
    return app


def _record_plain_routes(app: FastAPI) -> None:
    """Make the app's plain Starlette routes (the OpenAPI document, the docs UI's files)
    record themselves as the matched route (`scope["route"]`), as FastAPI's own routes
    do. Starlette's router records every route it hands a request to, fully or partly
    matched (a 405); FastAPI's records only its own. The request metrics name the route
    from it, and would count these as `unmatched` (docs/lambda-runtime.md)."""
    for route in app.router.routes:
        if isinstance(route, Route | Mount) and not isinstance(route, APIRoute):
            route.handle = _recording(route, route.handle)  # type: ignore[method-assign,assignment]


_Handle = Callable[[Scope, Receive, Send], Coroutine[Any, Any, None]]


def _recording(route: Route | Mount, handle: _Handle) -> _Handle:
    async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = route
        await handle(scope, receive, send)

    return recorded


_UNSUPPORTED_MEDIA_TYPE = error_response("`unsupported_media_type`: the body as another media type")


def _document_error_schemas(app: FastAPI) -> None:
    """Generate the OpenAPI document as FastAPI does, plus the shared error schemas, and
    the 415 of every operation that reads a body (`_expected_media_type`)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()  # FastAPI caches the dict it returns
            add_error_schemas(schema)
            for operations in schema["paths"].values():
                for operation in operations.values():
                    if "requestBody" in operation:
                        operation["responses"]["415"] = _UNSUPPORTED_MEDIA_TYPE
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
