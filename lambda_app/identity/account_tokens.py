"""Single-use account tokens: the secret in a password-reset or email-verification link.

An opaque token (lambda_app/identity/opaque_tokens.py), stored only as its SHA-256, with
its purpose, the address it was sent to and an expiry. Using one is one UPDATE: of two
requests racing with the same token, the second waits for the first's row lock, then
finds `used_at` set and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.identity.opaque_tokens import new_token, token_digest
from lambda_app.models import AccountToken, TokenPurpose, User

# Expired rows deleted whenever a token is issued to the same user: bounded, through the
# user_id index, and faster than they accrue (issuing is throttled per address).
EXPIRED_ROWS_DELETED_PER_ISSUE = 20


@dataclass(frozen=True)
class UsedToken:
    user_id: int
    email: str  # the address the token was sent to


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


async def owner(session: AsyncSession, token: str, purpose: TokenPurpose) -> int | None:
    """The user id of a token of `purpose` (used, expired or not), without locking it:
    callers lock the user first, then use the token, always in that order."""
    stmt = select(AccountToken.user_id).where(
        AccountToken.token_hash == token_digest(token), AccountToken.purpose == purpose.value
    )
    return await session.scalar(stmt)


async def use(session: AsyncSession, token: str, purpose: TokenPurpose) -> UsedToken | None:
    """Mark an outstanding token of `purpose` used; None if unknown, used or expired."""
    stmt = (
        update(AccountToken)
        .where(
            AccountToken.token_hash == token_digest(token),
            AccountToken.purpose == purpose.value,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > func.now(),
        )
        .values(used_at=func.now())
        .returning(AccountToken.user_id, AccountToken.email)
    )
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else UsedToken(user_id=row.user_id, email=row.email)


async def delete_outstanding(session: AsyncSession, user_id: int, purpose: TokenPurpose) -> None:
    """Delete the user's unused tokens of `purpose`: the links already sent stop working."""
    await session.execute(
        delete(AccountToken).where(
            AccountToken.user_id == user_id,
            AccountToken.purpose == purpose.value,
            AccountToken.used_at.is_(None),
        )
    )
