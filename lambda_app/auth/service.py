"""Logging in: check credentials, limit guesses, issue tokens."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.auth.errors import EmailNotVerified, InvalidCredentials, TooManyLoginAttempts
from lambda_app.auth.sessions import IssuedTokens, issue_tokens
from lambda_app.core import metrics
from lambda_app.core.settings import ApiSettings
from lambda_app.db.session import transaction_of_its_own
from lambda_app.identity import password_attempts
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
    new_hash: str | None = None
    # Checked as one guess at the login name and its account (identity.password_attempts).
    async with transaction_of_its_own(session) as own:
        found = None if "\x00" in login else await UserRepository(own).get_by_login(login)
        keys = password_attempts.keys_for(login=login, user_id=None if found is None else found.id)

        def password_is_right() -> bool:
            nonlocal new_hash
            if found is None:
                burn_verify_time(password)
                return False
            valid, new_hash = verify_password(password, found.hashed_password)
            return valid and found.is_active

        outcome = await password_attempts.guess(own, keys, settings, password_is_right)
    if outcome.locked_for:
        raise TooManyLoginAttempts(retry_after_seconds=outcome.locked_for)
    if not outcome.right or found is None:
        metrics.count(metrics.LOGIN_FAILURES, stage=settings.environment)
        raise InvalidCredentials()

    # Locked from here on (identity.user_lock), and still as checked: a password changed,
    # or the account deactivated or deleted, since it was read means the check is void.
    user = await locked_user(session, found.id)
    if user is None or user.hashed_password != found.hashed_password or not user.is_active:
        raise InvalidCredentials()

    if settings.require_verified_email and not user.email_verified:
        # The right password proves who is asking: send them a fresh link (throttled),
        # committed now: this request fails with a 403.
        await send_verification_now(session, found.id, settings)
        raise EmailNotVerified()

    if new_hash is not None:  # stored hash used outdated parameters
        user.hashed_password = new_hash
    await session.flush()
    return await issue_tokens(session, user, settings)
