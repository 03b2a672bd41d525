"""Password recovery: a single-use reset link by email, then a new password.

Asking for a link answers the same (202, one body) whether or not the address has an
account: the same lookup and throttle write either way, and at
`PASSWORD_RECOVERY_MIN_SECONDS` after it came (the pad), so the time a mail takes to send
doesn't tell who has an account either: the mail gets what is left of the pad and no more
(one attempt, timeouts inside it), or is dropped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.auth.errors import InvalidResetToken
from lambda_app.core.settings import ApiSettings
from lambda_app.db.session import committed_at_once
from lambda_app.identity import account_emails, account_tokens, password_attempts
from lambda_app.identity.account_emails import AccountEmailsUnavailable
from lambda_app.mail import Message
from lambda_app.models import TokenPurpose
from lambda_app.users import service as users_service
from lambda_app.users.repository import UserRepository


async def request_reset(email: str, settings: ApiSettings) -> None:
    """Mail a reset link if `email` is an active account's and had fewer than
    `ACCOUNT_EMAILS_PER_HOUR` asks this hour; otherwise do nothing, visibly the same.

    Its own short transaction, committed before the mail goes (no link for a token that
    isn't stored) and before the wait: neither holds a row lock or a connection.
    """
    if not account_emails.mail_configured(settings):
        raise AccountEmailsUnavailable()  # the same answer for every address
    started = time.monotonic()
    message: Message | None = None
    # Held off the request's deadline: cancelled mid-way, the COMMIT might stand (a link
    # stored, the throttle counted) while the client is told to try again.
    async with committed_at_once() as session:
        allowance = await account_emails.throttle(
            session, TokenPurpose.RESET_PASSWORD, email, settings
        )
        # Kept: a password change, a deactivation or a deletion in flight is waited for
        # and seen, so no link outlives them (nor breaks the token's foreign key).
        user = await UserRepository(session).get_by_email_kept(email)
        if allowance.allowed and user is not None and user.is_active:
            message = await account_emails.issue_password_reset(session, user, settings)
    pad = settings.password_recovery_min_seconds
    if message is not None:
        # Within what is left of the pad, whatever SES does (throttling, retries, no
        # answer): a mail it can't take by then is dropped, and the user asks again.
        # Without a pad (0: tests, local runs) there is no timing to keep alike.
        within = started + pad - time.monotonic() if pad > 0 else None
        await account_emails.deliver(message, TokenPurpose.RESET_PASSWORD, settings, within=within)
    remaining = started + pad - time.monotonic()
    if remaining > 0:  # what an address with no mail to send spends waiting
        await asyncio.sleep(remaining)


async def reset_password(
    session: AsyncSession, token: str, new_password: str, settings: ApiSettings
) -> None:
    """Spend the reset token and set the password; every token and session issued
    before ends, and the user's other reset links stop working."""
    purpose = TokenPurpose.RESET_PASSWORD
    user = await account_tokens.use(session, token, purpose)
    if user is None or not user.is_active:  # or deactivated since the link was sent
        raise InvalidResetToken()
    if user.email_verified_at is None:
        # The link reached that mailbox: as good a proof as a verification link.
        user.email_verified_at = dt.datetime.now(dt.UTC)
    await users_service.set_new_password(session, user, new_password, settings)  # + links
    # Whoever was locked out by failed logins has just proven who they are.
    logins = [password_attempts.login_key(login) for login in (user.username, user.email)]
    await password_attempts.clear(session, [*logins, password_attempts.account_key(user.id)])
