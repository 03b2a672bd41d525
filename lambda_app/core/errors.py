"""Typed domain errors and the one JSON error shape every error response uses.

    {"error": {"code": "user_not_found", "message": "User not found", "details": null}}

Services raise `AppError` subclasses that carry their HTTP status; one set of
exception handlers renders them. The same shape is declared in the OpenAPI
schema (`error_responses`) so the schema tells the truth.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from lambda_app.core.schemas import Schema


class ErrorDetail(Schema):
    loc: list[str | int] = []  # noqa: RUF012 - pydantic copies field defaults
    message: str
    type: str


class ErrorInfo(Schema):
    code: str
    message: str
    details: list[ErrorDetail] | None = None


class ErrorBody(Schema):
    error: ErrorInfo


HeaderObjects = Mapping[str, Mapping[str, Any]]  # OpenAPI header objects, by header name


class AppError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    message: ClassVar[str] = "Internal server error"
    # `ErrorDetail`s, for an error a client fixes field by field (as a validation error)
    details: ClassVar[tuple[dict[str, Any], ...]] = ()
    # The headers every instance is sent with, as OpenAPI header objects (`error_responses`)
    sent_headers: ClassVar[HeaderObjects] = {}

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(message or self.message)
        self.detail_message = message or self.message
        self.headers = headers or {}


class NotAuthenticated(AppError):
    status_code = 401
    code = "not_authenticated"
    message = "Missing, invalid or expired credentials"
    challenge: ClassVar[str] = "Bearer"
    sent_headers: ClassVar[HeaderObjects] = {
        "WWW-Authenticate": {
            "description": '`Bearer`, or `Bearer error="invalid_token"` for a bearer token'
            " that came and can't be used (RFC 6750 3.1)",
            "schema": {"type": "string"},
        }
    }

    def __init__(self, message: str | None = None):
        super().__init__(message, headers={"WWW-Authenticate": self.challenge})


class InvalidAccessToken(NotAuthenticated):
    """A bearer token came and can't be used: malformed, expired, revoked, or its user gone.

    RFC 6750 3.1 names that case in the challenge, so a client knows to refresh or log in
    again rather than that it forgot the header."""

    challenge = 'Bearer error="invalid_token"'


class Throttled(AppError):
    """Too many of something: a 429 saying how long to wait (RFC 6585, RFC 9110 10.2.3)."""

    status_code = 429
    sent_headers: ClassVar[HeaderObjects] = {
        "Retry-After": {
            "description": "Seconds until the request can succeed",
            "schema": {"type": "integer", "minimum": 1},
        }
    }

    def __init__(self, *, retry_after_seconds: int):
        super().__init__(headers={"Retry-After": str(retry_after_seconds)})


class PermissionDenied(AppError):
    status_code = 403
    code = "permission_denied"
    message = "You do not have permission to do this"


class DatabaseUnavailable(AppError):
    status_code = 503
    code = "database_unavailable"
    message = "The database is unavailable, try again shortly"


class RequestTimedOut(AppError):
    status_code = 503
    code = "request_timeout"
    message = "The request took too long, try again shortly"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"
    message = "Request body is too large"


class UndecodableBody(AppError):
    """The event's body isn't encoded as the event says (see lambda_app.handlers.api)."""

    status_code = 400
    code = "undecodable_body"
    message = "Request body could not be decoded"


class InvalidHeader(AppError):
    """A Host or X-Forwarded-Port header with no readable port (see lambda_app.handlers.api)."""

    status_code = 400
    code = "invalid_header"
    message = "The Host or X-Forwarded-Port header is malformed"


def error_body(
    code: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


ERROR_BODY_REF = "#/components/schemas/ErrorBody"


def error_response(description: str, headers: HeaderObjects | None = None) -> dict[str, Any]:
    """One documented error response, in the shared shape, with the headers it is sent with.

    A `$ref` rather than `"model": ErrorBody`: FastAPI builds a pydantic field for
    every (route, status) pair that names a model, dozens of them at import time,
    only to write the same schema into the OpenAPI document. The schema itself is
    added once, by `add_error_schemas`.
    """
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": ERROR_BODY_REF}}},
    }
    if headers:
        response["headers"] = {name: dict(header) for name, header in headers.items()}
    return response


def error_responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status with the shared body, its codes and headers."""
    by_status: dict[int, list[type[AppError]]] = {}
    for error in errors:
        by_status.setdefault(error.status_code, []).append(error)
    return {
        status: error_response(
            "; ".join(f"`{e.code}`: {e.message}" for e in group), _sent_headers(group)
        )
        for status, group in sorted(by_status.items())
    }


def _sent_headers(errors: list[type[AppError]]) -> dict[str, dict[str, Any]]:
    """The headers of errors sharing a status: required where every one of them sends it."""
    names = {name for error in errors for name in error.sent_headers}
    return {
        name: {
            **next(e.sent_headers[name] for e in errors if name in e.sent_headers),
            "required": all(name in e.sent_headers for e in errors),
        }
        for name in sorted(names)
    }


def add_error_schemas(openapi_schema: dict[str, Any]) -> None:
    """Put ErrorBody (and the models it uses) into the document's components."""
    # Serialization mode, as FastAPI documents response models.
    schema = ErrorBody.model_json_schema(
        ref_template="#/components/schemas/{model}", mode="serialization"
    )
    components = openapi_schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(schema.pop("$defs", {}))
    components["ErrorBody"] = schema
