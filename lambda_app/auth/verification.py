"""Email verification: following the link sent at registration or after an email change."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.auth.errors import InvalidVerificationToken
from lambda_app.identity import account_tokens
from lambda_app.models import TokenPurpose


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
