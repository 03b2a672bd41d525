from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BeforeValidator
from starlette.convertors import StringConvertor, register_url_convertor

from lambda_app.core.errors import NotAuthenticated, PermissionDenied, error_responses
from lambda_app.core.schemas import Accepted
from lambda_app.core.settings import get_settings
from lambda_app.db.session import DbSession
from lambda_app.identity.account_emails import AccountEmailsUnavailable
from lambda_app.identity.dependencies import CurrentUser, Superuser
from lambda_app.users import service, sessions
from lambda_app.users.errors import (
    CannotChangeOwnCredentials,
    CannotDeleteSelf,
    EmailAlreadyVerified,
    EmailTaken,
    LastSuperuser,
    TooManyEmails,
    TooManyPasswordAttempts,
    UsernameTaken,
    UserNotFound,
    WrongCurrentPassword,
)
from lambda_app.users.schemas import (
    PasswordChange,
    UserPage,
    UserRead,
    UserUpdateAdmin,
    UserUpdateMe,
)

INT4_MAX = 2**31 - 1  # ids are PostgreSQL `integer`
# ASCII digits with no leading zero (`\d` would take other scripts' digits too).
_PLAIN_DECIMAL = re.compile("0|[1-9][0-9]*")


def _plain_decimal(value: str) -> str:
    """A number in its one spelling. Parsed as `int()` parses, `+1`, ` 1`, `01` and `1_0`
    (read as 10) would all name one user, or one page: one number, many URLs."""
    if not _PLAIN_DECIMAL.fullmatch(value):
        raise ValueError("must be written in plain decimal digits, with no leading zero")
    return value


# Path() before the validator: after it, its bounds reach the schema as unknown `ge`/`le`
# keys instead of `minimum`/`maximum` (tests/test_openapi.py).
UserId = Annotated[
    int,
    Path(ge=1, le=INT4_MAX, description="The user's id"),
    BeforeValidator(_plain_decimal),
]


class _UserIdSegment(StringConvertor):
    """The `{user_id}` path segment: any segment but `me`, which is /users/me's own path.

    OpenAPI matches concrete paths before templated ones, so DELETE /users/me is a 405
    (/users/me serves GET and PATCH), not delete_user with user_id="me" (a 422).
    Malformed ids still reach validation, and their 422.
    """

    regex = "(?!me$)[^/]+"


register_url_convertor("user_id", _UserIdSegment())
USER_PATH = "/{user_id:user_id}"  # documented as /users/{user_id}

router = APIRouter(prefix="/users", tags=["users"], responses=error_responses(NotAuthenticated))


@router.get("/me", response_model=UserRead, summary="The current user")
async def read_me(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)


@router.patch(
    "/me",
    response_model=UserRead,
    responses=error_responses(
        WrongCurrentPassword, UsernameTaken, EmailTaken, TooManyPasswordAttempts
    ),
    summary="Update the current user (a new email needs the current password, and a new link)",
)
async def update_me(data: UserUpdateMe, user: CurrentUser, session: DbSession) -> UserRead:
    return UserRead.model_validate(await service.update_me(session, user, data, get_settings()))


VERIFICATION_SENT = "A verification link is on its way to your email address."


@router.post(
    "/me/verify-email",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(EmailAlreadyVerified, TooManyEmails, AccountEmailsUnavailable),
    summary="Send the current user a new verification link",
)
async def resend_verification(user: CurrentUser, session: DbSession) -> Accepted:
    await service.resend_verification(session, user, get_settings())
    return Accepted(message=VERIFICATION_SENT)


@router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(WrongCurrentPassword, TooManyPasswordAttempts),
    summary="Change the current user's password (revokes older tokens)",
)
async def change_password(data: PasswordChange, user: CurrentUser, session: DbSession) -> None:
    await service.change_password(session, user, data, get_settings())


@router.delete(
    "/me/sessions",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Log out everywhere: end every session of the current user, this one too",
)
async def end_my_sessions(user: CurrentUser, session: DbSession) -> None:
    await sessions.end_own_sessions(session, user.id)


@router.get(
    "",
    response_model=UserPage,
    responses=error_responses(PermissionDenied),
    summary="List users by id (superuser only)",
)
async def list_users(
    _: Superuser,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=100), BeforeValidator(_plain_decimal)] = 50,
    cursor: Annotated[
        int,
        Query(ge=0, le=INT4_MAX, description="`next_cursor` of the previous page"),
        BeforeValidator(_plain_decimal),
    ] = 0,
) -> UserPage:
    users, next_cursor = await service.list_page(session, after_id=cursor, limit=limit)
    return UserPage(
        items=[UserRead.model_validate(u) for u in users],
        next_cursor=None if next_cursor is None else str(next_cursor),
    )


@router.get(
    USER_PATH,
    response_model=UserRead,
    responses=error_responses(UserNotFound),
    summary="A user by id (a superuser any; anyone else only themselves, others are a 404)",
)
async def read_user(user_id: UserId, reader: CurrentUser, session: DbSession) -> UserRead:
    return UserRead.model_validate(await service.read(session, reader=reader, user_id=user_id))


@router.patch(
    USER_PATH,
    response_model=UserRead,
    responses=error_responses(
        PermissionDenied,
        CannotChangeOwnCredentials,
        UserNotFound,
        UsernameTaken,
        EmailTaken,
        LastSuperuser,
    ),
    summary="Update any user (superuser only; one's own email and password through /users/me)",
)
async def update_user(
    user_id: UserId, data: UserUpdateAdmin, actor: Superuser, session: DbSession
) -> UserRead:
    updated = await service.update(
        session, actor=actor, user_id=user_id, data=data, settings=get_settings()
    )
    return UserRead.model_validate(updated)


@router.delete(
    USER_PATH,
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(PermissionDenied, CannotDeleteSelf, UserNotFound, LastSuperuser),
    summary="Delete a user (superuser only)",
)
async def delete_user(user_id: UserId, actor: Superuser, session: DbSession) -> None:
    await service.delete(session, actor=actor, user_id=user_id)


@router.delete(
    USER_PATH + "/sessions",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(PermissionDenied, UserNotFound),
    summary="Log a user out everywhere (superuser only; the password stays as it is)",
)
async def end_sessions_of_user(user_id: UserId, _: Superuser, session: DbSession) -> None:
    await sessions.end_sessions_of(session, user_id)
