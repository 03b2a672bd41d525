"""Logging a user out everywhere: every session they have, on every device, ends at once.

A session's access tokens end with it (each names its session, checked on every request),
so nothing issued before keeps working: not the refresh tokens, not the access tokens,
the caller's own included.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.core.errors import NotAuthenticated
from lambda_app.identity.sessions import revoke_all_sessions
from lambda_app.users.errors import UserNotFound


async def end_own_sessions(session: AsyncSession, user_id: int) -> None:
    if not await revoke_all_sessions(session, user_id):
        raise NotAuthenticated()  # deleted since the request read the caller


async def end_sessions_of(session: AsyncSession, user_id: int) -> None:
    """A superuser's: the password and the account stay as they are."""
    if not await revoke_all_sessions(session, user_id):
        raise UserNotFound()
