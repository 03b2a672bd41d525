"""Single-use account tokens: the secret in a password-reset or email-verification link.

An opaque token (lambda_app/identity/opaque_tokens.py), stored only as its SHA-256, with
its purpose, the address it was sent to and an expiry. Using one locks its user's row,
then spends it in one UPDATE: of two requests racing with the same token, the second
waits for the first, then finds `used_at` set and changes nothing.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.identity.opaque_tokens import new_token, token_digest
from lambda_app.models import AccountToken, TokenPurpose, User

# Expired rows deleted whenever a token is issued to the same user: bounded, through the
# user_id index, and faster than they accrue (issuing is throttled per address).
EXPIRED_ROWS_DELETED_PER_ISSUE = 20


async def issue(
    session: AsyncSession, user: User, purpose: TokenPurpose, lifetime: dt.timedelta
) -> str:
    """A new token for `user`, bound to the user's current email. Flushes."""
    expired = (
        select(AccountToken.id)
        .where(AccountToken.user_id == user.id, AccountToken.expires_at < func.now())
        .limit(EXPIRED_ROWS_DELETED_PER_ISSUE)
        .scalar_subquery()
    )
    await session.execute(delete(AccountToken).where(AccountToken.id.in_(expired)))
    token = new_token()
    session.add(
        AccountToken(
            user_id=user.id,
            purpose=purpose.value,
            token_hash=token_digest(token),
            email=user.email,
            expires_at=dt.datetime.now(dt.UTC) + lifetime,
        )
    )
    await session.flush()
    return token


async def use(session: AsyncSession, token: str, purpose: TokenPurpose) -> User | None:
    """Spend an outstanding token of `purpose`: the user it was issued to, that user's row
    locked; None if the token is unknown, used or expired, or was sent to an address the
    account no longer has.

    The user's row is locked before the token's, the order every use takes: two links of
    one user used at once queue instead of deadlocking, and an email change in flight is
    waited for (then shows as another address).
    """
    digest = token_digest(token)
    owner = select(AccountToken.user_id).where(
        AccountToken.token_hash == digest, AccountToken.purpose == purpose.value
    )
    user_id = await session.scalar(owner)
    if user_id is None:
        return None
    locked = (
        select(User)
        .where(User.id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)  # fresh from the database
    )
    user = await session.scalar(locked)
    spend = (
        update(AccountToken)
        .where(
            AccountToken.token_hash == digest,
            AccountToken.purpose == purpose.value,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > func.now(),
        )
        .values(used_at=func.now())
        .returning(AccountToken.email)
    )
    sent_to = await session.scalar(spend)
    if user is None or sent_to is None or user.email != sent_to:
        return None
    return user


async def delete_outstanding(session: AsyncSession, user_id: int, *purposes: TokenPurpose) -> None:
    """Delete the user's unused tokens of `purposes`: the links already sent stop working.
    The user's row is locked first (identity.user_lock), by the caller."""
    await session.execute(
        delete(AccountToken).where(
            AccountToken.user_id == user_id,
            AccountToken.purpose.in_([purpose.value for purpose in purposes]),
            AccountToken.used_at.is_(None),
        )
    )
