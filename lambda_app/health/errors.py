from __future__ import annotations

from lambda_app.core.errors import AppError


class SchemaUnusable(AppError):
    """The API's role reached the database but cannot read the app's tables as the code
    maps them: a grant missing, or a schema this code does not fit."""

    status_code = 503
    code = "schema_unusable"
    message = "The database schema is not usable by this version of the API"
