"""`CurrentUser` and `Superuser`: the authenticated caller, as dependencies.

Here, below both `users` and `auth`, so that the users' routes can require a caller
without importing the login flow, which itself builds on users.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.core.errors import InvalidAccessToken, NotAuthenticated, PermissionDenied
from lambda_app.db.session import DbSession
from lambda_app.identity.sessions import session_is_live
from lambda_app.identity.signing_key import signing_key_for_request
from lambda_app.identity.tokens import InvalidToken, claimed_kid, verify_access_token
from lambda_app.models import User

# auto_error=False: a missing token is rendered by our own error handler, in our shape.
_bearer = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


async def _current_user(
    request: Request, session: DbSession, token: Annotated[str | None, Depends(_bearer)]
) -> User:
    if not token:
        raise NotAuthenticated()
    user = await user_from_token(session, token)
    request.state.user_id = user.id  # for the request log line
    return user


# The user and whether the token's session is live, in one statement. Built once, with
# the values bound per request: building it anew for every request cost more Python
# time than the user's lookup alone used to.
_USER_AND_SESSION = select(User, session_is_live(User.id, bindparam("session_id"))).where(
    User.id == bindparam("user_id")
)


async def user_from_token(session: AsyncSession, token: str) -> User:
    try:
        key = await signing_key_for_request(claimed_kid(token))
        claims = verify_access_token(token, key)
    except InvalidToken:
        raise InvalidAccessToken() from None
    params = {"user_id": claims.user_id, "session_id": claims.session_id}
    row = (await session.execute(_USER_AND_SESSION, params)).first()
    # Deleted, deactivated, the password changed since the token was issued, or its
    # session ended (a logout, a replayed refresh token).
    if row is None:
        raise InvalidAccessToken()
    user, session_live = row
    if not (session_live and user.is_active and user.token_version == claims.token_version):
        raise InvalidAccessToken()
    return user


async def _superuser(user: Annotated[User, Depends(_current_user)]) -> User:
    if not user.is_superuser:
        raise PermissionDenied()
    return user


CurrentUser = Annotated[User, Depends(_current_user)]
Superuser = Annotated[User, Depends(_superuser)]
