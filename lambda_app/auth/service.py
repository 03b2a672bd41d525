"""Logging in: check credentials, throttle failures, issue tokens."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.auth import throttle
from lambda_app.auth.errors import EmailNotVerified, InvalidCredentials, TooManyLoginAttempts
from lambda_app.auth.sessions import IssuedTokens, issue_tokens
from lambda_app.core import metrics
from lambda_app.core.settings import ApiSettings
from lambda_app.identity.account_emails import send_verification_now
from lambda_app.identity.passwords import burn_verify_time, verify_password
from lambda_app.identity.user_lock import locked_user
from lambda_app.users.repository import UserRepository


async def login(
    session: AsyncSession, *, login: str, password: str, settings: ApiSettings
) -> IssuedTokens:
    """Issue tokens (an access token, a refresh token starting a session) to an active user.

    Unknown users, wrong passwords and inactive accounts get the same error after
    the same work (a real or a dummy hash verification), so neither the message
    nor the timing tells an attacker which usernames exist. With
    `REQUIRE_VERIFIED_EMAIL`, an unverified user with the right password gets a 403.
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
        await throttle.record_failure(session, key, settings)
        metrics.count(metrics.LOGIN_FAILURES, stage=settings.environment)
        raise InvalidCredentials()

    # The row as of its lock (identity.user_lock): a password changed, or the
    # account deactivated or deleted, since it was read means the check above is void.
    verified_hash = user.hashed_password
    user = await locked_user(session, user.id)
    if user is None or user.hashed_password != verified_hash or not user.is_active:
        raise InvalidCredentials()

    if settings.require_verified_email and not user.email_verified:
        # The right password proves who is asking: send them a fresh link (throttled).
        await send_verification_now(session, user.id, settings)
        raise EmailNotVerified()

    if new_hash is not None:  # stored hash used outdated parameters; still the stored one
        user.hashed_password = new_hash
    if has_failures:
        await throttle.clear(session, key)
    await session.flush()
    return await issue_tokens(session, user, settings)
