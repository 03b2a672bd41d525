from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from lambda_app.core.schemas import Schema
from lambda_app.identity.opaque_tokens import TOKEN_MAX_LENGTH
from lambda_app.users.schemas import Email, Password

OpaqueToken = Annotated[
    str,
    StringConstraints(min_length=1, max_length=TOKEN_MAX_LENGTH),
    Field(description="The token exactly as it was issued (43 URL-safe characters)"),
]


class _Input(Schema):
    # Built at import, like the users' request bodies (lambda_app/users/schemas.py).
    model_config = ConfigDict(extra="forbid", defer_build=False)


class TokenResponse(Schema):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - not a secret
    expires_in: int
    refresh_token: str


class RefreshTokenBody(_Input):
    """The body of `POST /api/auth/refresh` and `POST /api/auth/logout`."""

    refresh_token: OpaqueToken


class PasswordRecoveryRequest(_Input):
    email: Email


class PasswordReset(_Input):
    token: OpaqueToken = Field(description="From the reset link: `?token=…`")
    new_password: Password


class EmailVerification(_Input):
    token: OpaqueToken = Field(description="From the verification link: `?token=…`")
