"""Every query on the users table. Flushes, never commits: the request commits once."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from lambda_app.core.errors import AppError
from lambda_app.identity.login_names import account_name
from lambda_app.models import User
from lambda_app.users.errors import EmailTaken, UsernameTaken, UserNotFound

# Which constraint maps to which domain error (names from the naming convention).
_UNIQUE_ERRORS: dict[str, type[AppError]] = {
    "uq_users_username": UsernameTaken,
    "uq_users_slug": UsernameTaken,  # the slug derives from the username
    "uq_users_email": EmailTaken,
}


def _unique_violation(exc: IntegrityError) -> type[AppError] | None:
    text = str(exc.orig)
    for constraint, error in _UNIQUE_ERRORS.items():
        if constraint in text:
            return error
    return None


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int) -> User | None:
        return await self.session.get(User, user_id)

    async def get_by_login(self, login: str) -> User | None:
        """Find by username or email, folded as uniqueness folds them (identity.login_names):
        `mallory-x` finds `Mallory_X`, and `a@xn--bcher-kva.de` finds `a@bücher.de`."""
        name = account_name(login)
        if name is None:
            return None
        column = User.email if "@" in name else User.slug  # no slug has an `@`
        return await self.session.scalar(select(User).where(column == name))

    async def get_by_email(self, email: str) -> User | None:
        return await self.session.scalar(select(User).where(User.email == email.lower()))

    async def get_by_email_kept(self, email: str) -> User | None:
        """Find by email and keep the row unchanged until the transaction ends (a change
        or a deletion in flight is waited for, then seen: as no user if deleted).

        FOR SHARE: it waits for whoever holds the row to change it (identity.user_lock's
        FOR NO KEY UPDATE: a password change, a deactivation) and holds them off until
        it ends. FOR KEY SHARE, which waits only for a DELETE or a new email, let a
        recovery read the account while a password change or a deactivation was under
        way and store its reset link after they had deleted the links already mailed:
        the link outlived them. Logins and refreshes hold the row only briefly (never
        while hashing a password), so the wait is short.
        """
        stmt = (
            select(User)
            .where(User.email == email.lower())
            .with_for_update(read=True)
            .execution_options(populate_existing=True)
        )
        return await self.session.scalar(stmt)

    async def list_after(self, *, after_id: int, limit: int) -> list[User]:
        """Keyset page ordered by id: stable while rows are added or removed."""
        stmt = select(User).where(User.id > after_id).order_by(User.id).limit(limit)
        return list(await self.session.scalars(stmt))

    async def save(self, user: User) -> User:
        """Insert or update `user`, turning unique violations into 409 domain errors.

        Catching the violation (rather than checking first) also covers two
        requests that race to take the same username or email. A user deleted since it
        was loaded (its UPDATE matches no row) is a 404, like one deleted before.
        """
        self.session.add(user)
        try:
            await self.session.flush()
        except StaleDataError:
            raise UserNotFound() from None
        except IntegrityError as exc:
            error = _unique_violation(exc)
            if error is None:
                raise
            raise error() from None
        await self.session.refresh(user)  # server-side defaults and onupdate timestamps
        return user

    async def delete(self, user_id: int) -> bool:
        """Delete the user; whether there was one. One statement: of two deletions of
        one user, the second waits for the first, then finds no row."""
        stmt = delete(User).where(User.id == user_id).returning(User.id)
        return await self.session.scalar(stmt) is not None
