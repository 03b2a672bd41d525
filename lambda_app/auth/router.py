from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response, status
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import FormData

from lambda_app.auth import recovery, service, sessions, verification
from lambda_app.auth.errors import (
    EmailNotVerified,
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidResetToken,
    InvalidVerificationToken,
    TooManyLoginAttempts,
)
from lambda_app.auth.schemas import (
    EmailVerification,
    PasswordRecoveryRequest,
    PasswordReset,
    RefreshTokenBody,
    TokenResponse,
)
from lambda_app.core.errors import error_response, error_responses
from lambda_app.core.schemas import Accepted
from lambda_app.core.settings import get_settings
from lambda_app.db.session import DbSession
from lambda_app.identity import account_emails
from lambda_app.identity.account_emails import AccountEmailsUnavailable
from lambda_app.users import service as users_service
from lambda_app.users.errors import EmailTaken, UsernameTaken
from lambda_app.users.schemas import PASSWORD_MAX, UserCreate, UserRead

router = APIRouter(prefix="/auth", tags=["auth"])
GRANT_TYPE_PATTERN = "^password$"  # RFC 6749 4.3.2; absent, it is taken to be that


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses=error_responses(UsernameTaken, EmailTaken),
    summary="Create an account (and email it a verification link)",
)
async def register(data: UserCreate, session: DbSession) -> UserRead:
    user = await users_service.register(session, data)
    await account_emails.mail_verification_after_commit(session, user, get_settings())
    return UserRead.model_validate(user)


@router.post(
    "/token",
    response_model=TokenResponse,
    responses={
        400: error_response(
            "`bad_request`: a form that can't be parsed (over 1,000 fields, "
            "a malformed multipart body)"
        ),
        **error_responses(InvalidCredentials, EmailNotVerified, TooManyLoginAttempts),
    },
    summary="Log in (OAuth2 password flow) with a username or an email",
)
async def token(
    request: Request,
    response: Response,
    session: DbSession,
    username: Annotated[str, Form(max_length=320, description="Username or email")],
    password: Annotated[str, Form(max_length=PASSWORD_MAX)],
    grant_type: Annotated[str | None, Form(pattern=GRANT_TYPE_PATTERN)] = None,
) -> TokenResponse:
    form = await request.form()  # parsed already: no second read
    _refuse_repeated_fields(form)
    _refuse_an_empty_grant_type(form)
    issued = await service.login(
        session, login=username, password=password, settings=get_settings()
    )
    return _token_response(issued, response)


@router.post(
    "/refresh",
    response_model=TokenResponse,
    responses=error_responses(InvalidRefreshToken),
    summary="Trade a refresh token for new tokens (the presented one is spent)",
)
async def refresh(data: RefreshTokenBody, session: DbSession, response: Response) -> TokenResponse:
    issued = await sessions.refresh(session, data.refresh_token, get_settings())
    return _token_response(issued, response)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End the refresh token's session (idempotent)",
)
async def logout(data: RefreshTokenBody, session: DbSession) -> None:
    await sessions.logout(session, data.refresh_token)


RECOVERY_ACCEPTED = (
    "If an active account has this address, a link to reset its password is on its way."
)


@router.post(
    "/password-recovery",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(AccountEmailsUnavailable),
    summary="Email a single-use password reset link (the same answer for any address)",
)
async def password_recovery(data: PasswordRecoveryRequest) -> Accepted:
    # No DbSession: the recovery commits its one transaction itself, before mailing.
    await recovery.request_reset(data.email, get_settings())
    return Accepted(message=RECOVERY_ACCEPTED)


@router.post(
    "/reset-password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(InvalidResetToken),
    summary="Set a new password with a reset link's token (ends every session)",
)
async def reset_password(data: PasswordReset, session: DbSession) -> None:
    await recovery.reset_password(session, data.token, data.new_password, get_settings())


@router.post(
    "/verify-email",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(InvalidVerificationToken),
    summary="Verify an email address with a verification link's token",
)
async def verify_email(data: EmailVerification, session: DbSession) -> None:
    await verification.verify_email(session, data.token)


def _refuse_repeated_fields(form: FormData) -> None:
    """RFC 6749 3.1: a parameter sent twice is an error. FastAPI would take the last one,
    so `username=a&username=b` could log in as an account the client never meant."""
    repeated = [
        name for name in ("username", "password", "grant_type") if len(form.getlist(name)) > 1
    ]
    if repeated:
        raise RequestValidationError(
            [
                {"loc": ("body", name), "msg": "Sent more than once", "type": "repeated_field"}
                for name in repeated
            ]
        )


def _refuse_an_empty_grant_type(form: FormData) -> None:
    """`grant_type=` is refused as any grant type but `password` is, as the schema says:
    FastAPI reads an empty form field as an absent one, which would let it through."""
    if form.get("grant_type") == "":
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "grant_type"),
                    "msg": f"String should match pattern '{GRANT_TYPE_PATTERN}'",
                    "type": "string_pattern_mismatch",
                }
            ]
        )


def _token_response(issued: sessions.IssuedTokens, response: Response) -> TokenResponse:
    # RFC 6749 5.1: an answer holding tokens MUST say no-store, and Pragma for HTTP/1.0 caches.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return TokenResponse(
        access_token=issued.access.token,
        expires_in=issued.access.expires_in,
        refresh_token=issued.refresh_token,
    )
