"""Sessions: issuing an access token with a refresh token, refreshing, logging out."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.auth.errors import InvalidRefreshToken
from lambda_app.core.settings import ApiSettings
from lambda_app.identity import sessions
from lambda_app.identity.signing_key import current_signing_key_for_request
from lambda_app.identity.tokens import AccessToken, create_access_token
from lambda_app.identity.user_lock import locked_user
from lambda_app.models import User


@dataclass(frozen=True)
class IssuedTokens:
    access: AccessToken
    refresh_token: str


async def issue_tokens(
    session: AsyncSession,
    user: User,
    settings: ApiSettings,
    *,
    family_id: uuid.UUID | None = None,
    session_expires_at: dt.datetime | None = None,
) -> IssuedTokens:
    """An access token, and a refresh token in `family_id` (None: a new session), neither
    valid past the session's end: `session_expires_at`, or SESSION_MAX_DAYS from now
    (a login, or a session stored before sessions had an end). The access token names
    the session, so ending it ends the access token too."""
    now = dt.datetime.now(dt.UTC)
    family_id = family_id or uuid.uuid4()
    ends_at = session_expires_at or now + dt.timedelta(days=settings.session_max_days)
    refresh_token = await sessions.issue_refresh_token(
        session,
        user=user,
        family_id=family_id,
        lifetime=dt.timedelta(days=settings.refresh_token_expire_days),
        session_expires_at=ends_at,
    )
    access = create_access_token(
        user_id=user.id,
        token_version=user.token_version,
        session_id=family_id,
        key=await current_signing_key_for_request(),
        lifetime=min(dt.timedelta(minutes=settings.access_token_expire_minutes), ends_at - now),
    )
    return IssuedTokens(access=access, refresh_token=refresh_token)


async def refresh(session: AsyncSession, refresh_token: str, settings: ApiSettings) -> IssuedTokens:
    """Spend `refresh_token` for new tokens in its family.

    Every failure is the same 401. A spent token presented again revokes its family, in
    a transaction of its own (this request rolls back): whichever of the two holders
    is the thief, both are signed out. The user's row is locked before the token is
    spent (identity.user_lock), so a logout, deactivation or deletion racing
    this refresh either comes first and is seen here, or comes after and sees its token.
    """
    owner = await sessions.owner_of_refresh_token(session, refresh_token)
    # Deleted users' tokens are gone with them (ON DELETE CASCADE).
    user = None if owner is None else await locked_user(session, owner)
    if user is None:
        raise InvalidRefreshToken()
    spent = await sessions.spend_refresh_token(session, refresh_token)
    if spent is None:
        row = await sessions.find_refresh_token(session, refresh_token)
        if row is not None and row.spent_at is not None and row.revoked_at is None:
            # This request fails anyway, and its transaction ends before the revocation's:
            # the UPDATE that lost a race changed nothing but still holds the row's lock
            # (READ COMMITTED locks a concurrently updated row to re-check it), which the
            # revocation needs.
            await sessions.revoke_family_now(session, row.user_id, row.family_id)
        raise InvalidRefreshToken()
    # Deactivated, or the password changed since the session began.
    if not user.is_active or user.token_version != spent.token_version:
        raise InvalidRefreshToken()
    return await issue_tokens(
        session,
        user,
        settings,
        family_id=spent.family_id,
        session_expires_at=spent.session_expires_at,
    )


async def logout(session: AsyncSession, refresh_token: str) -> None:
    """Revoke the token's family. Unknown or already revoked: nothing to do, no error."""
    row = await sessions.find_refresh_token(session, refresh_token)
    if row is not None:
        await sessions.revoke_family(session, row.user_id, row.family_id)
