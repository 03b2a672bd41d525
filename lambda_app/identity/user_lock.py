"""One lock order for whatever changes a user's sessions, password or account tokens:
the user's row first, then the rows that belong to it.

Without it, concurrent requests for one user interleave badly under READ COMMITTED:
- a refresh racing a logout or a deactivation adds a token that the revocation's UPDATE,
  whose snapshot predates it, never sees: a session outlives its end;
- a login that rehashes the password it verified overwrites a new password set meanwhile;
- a password change that read `token_version` before another one committed writes the
  same version again: the tokens issued between the two survive;
- a refresh (token row, then user row) deadlocks with a DELETE of the user (user row, then
  its tokens by cascade), and a token inserted for a user deleted meanwhile breaks its
  foreign key: 500s where the answer is a 401 or a 404.

A transaction that locks the rows of several users locks them in id order, all at once,
before any other user row: a change that could leave no active superuser locks every
active superuser's row (`locked_active_superusers`), then the row of the user it changes.
Two such changes (two superusers demoting each other) then queue instead of deadlocking.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.models import User


async def locked_user(session: AsyncSession, user_id: int) -> User | None:
    """The user's row, read afresh and locked until the transaction ends; None if deleted.

    FOR NO KEY UPDATE: it waits for (and holds off) UPDATEs and DELETEs of the row and
    other such locks, not the foreign-key checks of rows inserted for the user.
    """
    stmt = (
        select(User)
        .where(User.id == user_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)  # the values as of the lock, not as loaded
    )
    return await session.scalar(stmt)


async def locked_active_superusers(session: AsyncSession, *, deleting: bool = False) -> list[int]:
    """The active superusers' ids, their rows locked in id order until the transaction
    ends: none of them stops being one meanwhile, so if the change at hand leaves one of
    them, an active superuser remains when it commits (superusers made since are not
    counted: never too many).

    FOR NO KEY UPDATE, as `locked_user`; FOR UPDATE, the lock a DELETE takes, when
    `deleting` (the user deleted may be one of them): a weaker lock taken first would let
    a FOR KEY SHARE locker (the foreign-key check of a row inserted for the user) in
    before the DELETE, which would then wait on it.
    """
    stmt = (
        select(User.id)
        .where(User.is_superuser, User.is_active)
        .order_by(User.id)
        .with_for_update(key_share=not deleting)
    )
    return list(await session.scalars(stmt))
