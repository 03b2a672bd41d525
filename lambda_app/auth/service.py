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
    found = None if "\x00" in login else await UserRepository(session).get_by_login(login)
    user_id = None if found is None else found.id
    keys = password_attempts.keys_for(login=login, user_id=user_id)
    locked_for = await password_attempts.take_attempt(session, keys, settings)
    if locked_for:
        raise TooManyLoginAttempts(headers={"Retry-After": str(locked_for)})

    # Locked from here on (identity.user_lock): the password checked is the one stored
    # until the tokens are issued, and a deletion or deactivation waits or is seen.
    user = None if user_id is None else await locked_user(session, user_id)
    if user is None:
        burn_verify_time(password)
        valid, new_hash = False, None
    else:
        valid, new_hash = verify_password(password, user.hashed_password)

    if user is None or not valid or not user.is_active:
        metrics.count(metrics.LOGIN_FAILURES, stage=settings.environment)
        raise InvalidCredentials()

    if settings.require_verified_email and not user.email_verified:
        # The right password proves who is asking: its guess is forgotten, and they get
        # a fresh link (throttled). Both commit now: this request fails with a 403.
        account = user.id  # read before the transactions below expire the loaded row
        async with transaction_of_its_own(session) as own:
            await password_attempts.clear(own, keys)
        await send_verification_now(session, account, settings)
        raise EmailNotVerified()

    if new_hash is not None:  # stored hash used outdated parameters
        user.hashed_password = new_hash
    await password_attempts.clear(session, keys)
    await session.flush()
    return await issue_tokens(session, user, settings)
