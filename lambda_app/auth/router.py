from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, status

from lambda_app.auth import service, sessions
from lambda_app.auth.errors import InvalidCredentials, InvalidRefreshToken, TooManyLoginAttempts
from lambda_app.auth.schemas import RefreshTokenBody, TokenResponse
from lambda_app.core.errors import error_responses
from lambda_app.core.settings import get_settings
from lambda_app.db.session import DbSession
from lambda_app.users import service as users_service
from lambda_app.users.errors import EmailTaken, UsernameTaken
from lambda_app.users.schemas import PASSWORD_MAX, UserCreate, UserRead

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses=error_responses(UsernameTaken, EmailTaken),
    summary="Create an account",
)
async def register(data: UserCreate, session: DbSession) -> UserRead:
    user = await users_service.register(session, data)
    return UserRead.model_validate(user)


@router.post(
    "/token",
    response_model=TokenResponse,
    responses=error_responses(InvalidCredentials, TooManyLoginAttempts),
    summary="Log in (OAuth2 password flow) with a username or an email",
)
async def token(
    session: DbSession,
    username: Annotated[str, Form(max_length=320, description="Username or email")],
    password: Annotated[str, Form(max_length=PASSWORD_MAX)],
    grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
) -> TokenResponse:
    issued = await service.login(
        session, login=username, password=password, settings=get_settings()
    )
    return _token_response(issued)


@router.post(
    "/refresh",
    response_model=TokenResponse,
    responses=error_responses(InvalidRefreshToken),
    summary="Trade a refresh token for new tokens (the presented one is spent)",
)
async def refresh(data: RefreshTokenBody, session: DbSession) -> TokenResponse:
    issued = await sessions.refresh(session, data.refresh_token, get_settings())
    return _token_response(issued)


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End the refresh token's session (idempotent)",
)
async def logout(data: RefreshTokenBody, session: DbSession) -> None:
    await sessions.logout(session, data.refresh_token)


def _token_response(issued: sessions.IssuedTokens) -> TokenResponse:
    return TokenResponse(
        access_token=issued.access.token,
        expires_in=issued.access.expires_in,
        refresh_token=issued.refresh_token,
    )
