"""Logging in: check credentials, issue tokens, resolve the user behind a token."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.auth import throttle
from lambda_app.auth.errors import InvalidCredentials, TooManyLoginAttempts
from lambda_app.core.errors import NotAuthenticated
from lambda_app.core.secrets import get_jwt_secret
from lambda_app.core.security import (
    AccessToken,
    InvalidToken,
    burn_verify_time,
    create_access_token,
    decode_access_token,
    verify_password,
)
from lambda_app.core.settings import Settings
from lambda_app.models import User
from lambda_app.users.repository import UserRepository


async def login(
    session: AsyncSession, *, login: str, password: str, settings: Settings
) -> AccessToken:
    """Issue a token for valid credentials of an active user.

    Unknown users, wrong passwords and inactive accounts get the same error after
    the same work (a real or a dummy hash verification), so neither the message
    nor the timing tells an attacker which usernames exist.
    """
    key = throttle.throttle_key(login)
    locked_for, has_failures = await throttle.lockout_seconds(session, key, settings)
    if locked_for:
        raise TooManyLoginAttempts(headers={"Retry-After": str(locked_for)})

    user = None if "\x00" in login else await UserRepository(session).get_by_login(login)
    if user is None:
        burn_verify_time(password)
        valid, new_hash = False, None
    else:
        valid, new_hash = verify_password(password, user.hashed_password)

    if user is None or not valid or not user.is_active:
        await throttle.record_failure(key, settings)
        raise InvalidCredentials()

    if new_hash is not None:  # stored hash used outdated parameters
        user.hashed_password = new_hash
    if has_failures:
        await throttle.clear(session, key)
    await session.flush()
    return create_access_token(
        user_id=user.id,
        token_version=user.token_version,
        secret=get_jwt_secret(),
        lifetime=dt.timedelta(minutes=settings.access_token_expire_minutes),
    )


async def user_from_token(session: AsyncSession, token: str) -> User:
    try:
        claims = decode_access_token(token, secret=get_jwt_secret())
    except InvalidToken:
        raise NotAuthenticated() from None
    user = await UserRepository(session).get(claims.user_id)
    # Deleted, deactivated, or the password changed since the token was issued.
    if user is None or not user.is_active or user.token_version != claims.token_version:
        raise NotAuthenticated()
    return user
