from typing import Literal

from pydantic import ConfigDict, Field

from lambda_app.core.schemas import Schema

# token_urlsafe(32) is 43 characters: the bound refuses junk before any hashing.
REFRESH_TOKEN_MAX = 128


class TokenResponse(Schema):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - not a secret
    expires_in: int
    refresh_token: str


class RefreshTokenBody(Schema):
    """The body of `POST /api/auth/refresh` and `POST /api/auth/logout`."""

    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=REFRESH_TOKEN_MAX)
