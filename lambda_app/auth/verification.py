"""Email verification: following the link sent at registration or after an email change."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.auth.errors import InvalidVerificationToken
from lambda_app.core.settings import ApiSettings
from lambda_app.db.session import get_sessionmaker
from lambda_app.identity import account_emails, account_tokens
from lambda_app.models import TokenPurpose, User


async def verify_email(session: AsyncSession, token: str) -> None:
    """Spend the token and mark the address it was sent to verified. A token for an
    address the account no longer has is refused like an unknown one."""
    purpose = TokenPurpose.VERIFY_EMAIL
    user = await account_tokens.use(session, token, purpose)
    if user is None:
        raise InvalidVerificationToken()
    if user.email_verified_at is None:
        user.email_verified_at = dt.datetime.now(dt.UTC)
    await account_tokens.delete_outstanding(session, user.id, purpose)
    await session.flush()


async def send_verification_now(user_id: int, settings: ApiSettings) -> None:
    """A verification email, committed in a transaction of its own.

    For a login refused for an unverified email: that request fails (403) and rolls
    back, but the link it sends (throttled per address) must be usable.
    """
    async with get_sessionmaker()() as session, session.begin():
        user = await session.get(User, user_id)
        if user is not None and not user.email_verified:
            await account_emails.send_verification(session, user, settings)
