"""Refresh tokens and the sessions (families) they belong to.

Here, below both `users` and `auth`: the users' rules revoke every session of a user
(a password change, a deactivation) without importing the login flow.

A refresh token is an opaque token (lambda_app/identity/opaque_tokens.py), shown to the
client once and stored only as its SHA-256. Refreshing spends a token and adds the next
one to the same family; a spent token presented again means two parties hold the family,
so the whole family is revoked.

Every change to a user's sessions takes the user's row lock first, then touches their
tokens (lambda_app.identity.user_lock says why).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnExpressionArgument, Exists, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.db.session import transaction_of_its_own
from lambda_app.identity.opaque_tokens import new_token, token_digest
from lambda_app.identity.user_lock import locked_user
from lambda_app.models import RefreshToken, User

# Expired rows deleted per issued token: cheap and bounded, yet faster than they accrue
# (a user gains at most one row per refresh).
EXPIRED_ROWS_DELETED_PER_ISSUE = 20


@dataclass(frozen=True)
class SpentToken:
    """What a successfully spent refresh token tells: whose session, and which."""

    user_id: int
    family_id: uuid.UUID
    token_version: int
    session_expires_at: dt.datetime | None  # None: stored before sessions had an end


async def issue_refresh_token(
    session: AsyncSession,
    *,
    user: User,
    lifetime: dt.timedelta,
    family_id: uuid.UUID,
    session_expires_at: dt.datetime,
) -> str:
    """A new refresh token for `user` in `family_id` (a login's new id starts a family),
    valid for `lifetime` but never past its session's end, `session_expires_at`.

    Also deletes a few of the user's rows that expired more than a lifetime ago (at most
    EXPIRED_ROWS_DELETED_PER_ISSUE, found through the user_id index): the user's own logins
    and refreshes clean up after them, without a sweeper and without an unbounded delete
    in a request, faster than they add rows (one each).
    """
    token = new_token()
    # Kept for one more lifetime after they expire: a spent token's row is what recognises
    # its replay, which must still revoke a family in use (refreshing slides a family's
    # expiry up to its session's end).
    kept_until = func.now() - lifetime
    expired = (
        select(RefreshToken.id)
        .where(RefreshToken.user_id == user.id, RefreshToken.expires_at < kept_until)
        .limit(EXPIRED_ROWS_DELETED_PER_ISSUE)
        .scalar_subquery()
    )
    await session.execute(delete(RefreshToken).where(RefreshToken.id.in_(expired)))
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_hash=token_digest(token),
            token_version=user.token_version,
            expires_at=min(dt.datetime.now(dt.UTC) + lifetime, session_expires_at),
            session_expires_at=session_expires_at,
        )
    )
    await session.flush()
    return token


async def spend_refresh_token(session: AsyncSession, token: str) -> SpentToken | None:
    """Mark an active token spent; None if it is unknown, spent, revoked or expired.

    One statement decides: of two requests spending the same token at once, the second
    waits for the first's row lock, then finds `spent_at` set and updates nothing.
    """
    stmt = (
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == token_digest(token),
            RefreshToken.spent_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > func.now(),
        )
        .values(spent_at=func.now())
        .returning(
            RefreshToken.user_id,
            RefreshToken.family_id,
            RefreshToken.token_version,
            RefreshToken.session_expires_at,
        )
    )
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else SpentToken(*row)


def session_is_live(
    user_id: ColumnExpressionArgument[int], family_id: ColumnExpressionArgument[uuid.UUID]
) -> Exists:
    """Whether the user's session `family_id` is still live: not logged out, not revoked
    for a replay or a password change. An SQL expression, so that the access-token check
    reads it in the same statement as the user (`identity.dependencies`)."""
    return (
        select(RefreshToken.id)
        .where(
            RefreshToken.family_id == family_id,
            RefreshToken.user_id == user_id,
            RefreshToken.revoked_at.is_(None),
        )
        .exists()
    )


async def owner_of_refresh_token(session: AsyncSession, token: str) -> int | None:
    """The id of the user a refresh token was issued to (whatever its state), unlocked."""
    stmt = select(RefreshToken.user_id).where(RefreshToken.token_hash == token_digest(token))
    return await session.scalar(stmt)


async def find_refresh_token(session: AsyncSession, token: str) -> RefreshToken | None:
    stmt = select(RefreshToken).where(RefreshToken.token_hash == token_digest(token))
    return await session.scalar(stmt)


async def revoke_family(session: AsyncSession, user_id: int, family_id: uuid.UUID) -> None:
    """Revoke every token of one session (a family) of the user's."""
    await locked_user(session, user_id)
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )


async def revoke_family_now(
    request_session: AsyncSession, user_id: int, family_id: uuid.UUID
) -> None:
    """Revoke a family in a short transaction of its own, committed at once.

    For reuse detection: the request that detects a replay fails (401) and rolls back,
    but the revocation must stand.
    """
    async with transaction_of_its_own(request_session) as session:
        await revoke_family(session, user_id, family_id)


async def revoke_all_sessions(session: AsyncSession, user_id: int) -> bool:
    """End every session of the user: each refresh token still active is revoked, and
    with it the access tokens that name its session. False if there is no such user."""
    if await locked_user(session, user_id) is None:
        return False
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    return True
