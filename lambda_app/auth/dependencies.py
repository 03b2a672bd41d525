"""`CurrentUser` and `Superuser`: the authenticated caller, as dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from lambda_app.auth import service
from lambda_app.core.db import DbSession
from lambda_app.core.errors import NotAuthenticated, PermissionDenied
from lambda_app.models import User

# auto_error=False: a missing token is rendered by our own error handler, in our shape.
_bearer = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


async def _current_user(
    request: Request, session: DbSession, token: Annotated[str | None, Depends(_bearer)]
) -> User:
    if not token:
        raise NotAuthenticated()
    user = await service.user_from_token(session, token)
    request.state.user_id = user.id  # for the request log line
    return user


async def _superuser(user: Annotated[User, Depends(_current_user)]) -> User:
    if not user.is_superuser:
        raise PermissionDenied()
    return user


CurrentUser = Annotated[User, Depends(_current_user)]
Superuser = Annotated[User, Depends(_superuser)]
