"""Request and response bodies of the users domain. `hashed_password` is in none of them."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import MISSING, AfterValidator, ConfigDict, Field, StrictBool, StringConstraints

from lambda_app.core.schemas import Schema
from lambda_app.core.types import EMAIL_PATTERN, NoNulStr, normalize_email
from lambda_app.identity.passwords import normalize_password
from lambda_app.models.user import EMAIL_MAX, NAME_MAX, USERNAME_MAX

USERNAME_PATTERN = r"^[A-Za-z0-9_-]+$"
PASSWORD_MIN = 8
PASSWORD_MAX = 256  # bounds the hashing cost an attacker can ask for


Username = Annotated[
    str,
    StringConstraints(min_length=3, max_length=USERNAME_MAX, pattern=USERNAME_PATTERN),
    Field(description="3-32 characters: letters, digits, `_` and `-`", examples=["alice_smith"]),
]
Email = Annotated[
    str,
    StringConstraints(max_length=EMAIL_MAX),
    AfterValidator(normalize_email),
    Field(
        description=(
            "Stored lower-cased; unique regardless of case. Addresses on special-use"
            " domains (RFC 6761: `.test`, `.local`, `.localhost`, `.invalid`, `.onion`,"
            " `.arpa`) are refused"
        ),
        examples=["alice@example.com"],
        json_schema_extra={"format": "email", "pattern": EMAIL_PATTERN},
    ),
]


def _as_hashed(password: str) -> str:
    """The password as it is hashed (identity.passwords), its length measured there:
    NFKC makes `e` + U+0301 one `é`, and the ligature `ﬀ` two letters."""
    normalized = normalize_password(password)
    if not PASSWORD_MIN <= len(normalized) <= PASSWORD_MAX:
        raise ValueError(f"must be {PASSWORD_MIN}-{PASSWORD_MAX} characters once NFKC-normalized")
    return normalized


Password = Annotated[
    NoNulStr,
    AfterValidator(_as_hashed),
    Field(
        description=f"{PASSWORD_MIN}-{PASSWORD_MAX} characters, counted NFKC-normalized",
        # What most passwords are held to; the validator measures the normalized form.
        json_schema_extra={"minLength": PASSWORD_MIN, "maxLength": PASSWORD_MAX},
    ),
]
Name = Annotated[NoNulStr, StringConstraints(max_length=NAME_MAX)]
# Only checked against the stored hash: no minimum, and the maximum bounds the hashing.
CurrentPassword = Annotated[NoNulStr, StringConstraints(max_length=PASSWORD_MAX)]


class _Input(Schema):
    # Request bodies are built at import: FastAPI builds their validators inside a
    # warnings filter, and a deferred build would emit its warnings on first use.
    model_config = ConfigDict(extra="forbid", defer_build=False)


class UserCreate(_Input):
    username: Username
    email: Email
    password: Password
    first_name: Name = ""
    last_name: Name = ""


class _UserUpdate(_Input):
    """The profile's fields; omitted fields stay as they are.

    An omitted field is MISSING, never None: no column of a user can be null, so an
    explicit null is refused (a 422) and the schema declares none. Taken as omitted, it
    answered 200 to a client that meant to clear the field, and changed nothing.
    """

    username: Username | MISSING = MISSING
    email: Email | MISSING = MISSING
    first_name: Name | MISSING = MISSING
    last_name: Name | MISSING = MISSING


class UserUpdateMe(_UserUpdate):
    """Fields a user may change on their own account. A new email needs the current
    password: where recovery links go decides who can take the account over."""

    current_password: CurrentPassword | MISSING = Field(
        default=MISSING, description="Required, and checked, when `email` changes"
    )


class UserUpdateAdmin(_UserUpdate):
    """What a superuser may change on any account."""

    password: Password | MISSING = MISSING
    # Strict: `true` or `false`, as the schema says; lax, a 0 or a "no" would demote.
    is_active: StrictBool | MISSING = MISSING
    is_superuser: StrictBool | MISSING = MISSING


class PasswordChange(_Input):
    current_password: CurrentPassword
    new_password: Password


class UserRead(Schema):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    slug: str
    email: str
    first_name: str
    last_name: str
    is_active: bool
    is_superuser: bool
    email_verified: bool = Field(
        description="Whether the user followed a verification link sent to `email`;"
        " false again after the email changes"
    )
    created_at: dt.datetime
    updated_at: dt.datetime


class UserPage(Schema):
    items: list[UserRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page"
    )
