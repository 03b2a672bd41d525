"""Rules of the users domain. Stateless functions over a session."""

from __future__ import annotations

import datetime as dt

from pydantic import MISSING
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.core.errors import NotAuthenticated
from lambda_app.core.settings import ApiSettings
from lambda_app.db.session import transaction_of_its_own
from lambda_app.identity import account_emails, account_tokens, password_attempts
from lambda_app.identity.account_emails import AccountEmailsUnavailable, Outcome
from lambda_app.identity.login_names import slugify
from lambda_app.identity.passwords import hash_password, verify_password
from lambda_app.identity.sessions import revoke_all_sessions
from lambda_app.identity.user_lock import locked_active_superusers, locked_user
from lambda_app.models import TokenPurpose, User
from lambda_app.users.errors import (
    CannotChangeOwnCredentials,
    CannotDeleteSelf,
    CurrentPasswordRequired,
    EmailAlreadyVerified,
    LastSuperuser,
    TooManyEmails,
    TooManyPasswordAttempts,
    UserNotFound,
    WrongCurrentPassword,
)
from lambda_app.users.repository import UserRepository
from lambda_app.users.schemas import PasswordChange, UserCreate, UserUpdateAdmin, UserUpdateMe


async def register(
    session: AsyncSession,
    data: UserCreate,
    *,
    is_superuser: bool = False,
    email_verified: bool = False,
) -> User:
    """Create the account. The caller sends the verification email, if any (the first
    superuser's address comes from its operator: it is created verified)."""
    user = User(
        username=data.username,
        slug=slugify(data.username),
        email=data.email,
        first_name=data.first_name,
        last_name=data.last_name,
        hashed_password=hash_password(data.password),
        is_superuser=is_superuser,
        email_verified_at=dt.datetime.now(dt.UTC) if email_verified else None,
    )
    return await UserRepository(session).save(user)


async def read(session: AsyncSession, *, reader: User, user_id: int) -> User:
    """The user `reader` asked for: any to a superuser, only themselves to anyone else.
    Another's id is the 404 of a missing one: ids are sequential, so reading them would
    harvest every account's email, and a 403 would still tell which ids exist."""
    if not reader.is_superuser and user_id != reader.id:
        raise UserNotFound()
    user = await UserRepository(session).get(user_id)
    if user is None:
        raise UserNotFound()
    return user


async def list_page(
    session: AsyncSession, *, after_id: int, limit: int
) -> tuple[list[User], int | None]:
    """A page of users and the cursor of the next page (None when this is the last)."""
    rows = await UserRepository(session).list_after(after_id=after_id, limit=limit + 1)
    has_more = len(rows) > limit
    page = rows[:limit]
    return page, (page[-1].id if has_more else None)


async def update_me(
    session: AsyncSession, user: User, data: UserUpdateMe, settings: ApiSettings
) -> User:
    """The caller's change to their own account. A new email needs the current password,
    checked (whenever sent) as the password change checks it: where reset links go decides
    who can take the account over, so a stolen access token must not move them. A caller
    deleted meanwhile no longer exists: a 401, as any of their requests would get."""
    user_id, email = user.id, user.email  # read before a guess's transaction expires them
    if data.current_password is MISSING and _changes_email(data.email, email):
        raise CurrentPasswordRequired()
    checked = None
    if data.current_password is not MISSING:
        checked = await _check_current_password(session, user_id, data.current_password, settings)
    current = await _locked_caller(session, user_id, checked)
    if checked is None and _changes_email(data.email, current.email):  # changed meanwhile
        raise CurrentPasswordRequired()
    return await _apply(session, current, data, settings, by_superuser=False)


async def update(
    session: AsyncSession,
    *,
    actor: User,
    user_id: int,
    data: UserUpdateAdmin,
    settings: ApiSettings,
) -> User:
    """A superuser's change to any account (a password too). Their own email and password
    change only through /users/me, with the current password, as anyone's: a stolen token
    of theirs can't lock them out of their own account. No change leaves no active
    superuser."""
    removes_a_superuser = data.is_superuser is False or data.is_active is False
    # The superusers' rows before the user's (identity.user_lock): the count holds until
    # the commit, and two superusers demoting each other queue instead of deadlocking.
    superusers = await locked_active_superusers(session) if removes_a_superuser else []
    user = await locked_user(session, user_id)
    if user is None:
        raise UserNotFound()
    if user.id == actor.id and (
        data.password is not MISSING or _changes_email(data.email, user.email)
    ):
        raise CannotChangeOwnCredentials()
    is_one = user.is_superuser and user.is_active
    if removes_a_superuser and is_one and not _another_remains(superusers, user.id):
        raise LastSuperuser()
    return await _apply(session, user, data, settings, by_superuser=True)


_MAILED_LINKS = (TokenPurpose.RESET_PASSWORD, TokenPurpose.VERIFY_EMAIL)


async def _apply(
    session: AsyncSession,
    user: User,
    data: UserUpdateMe | UserUpdateAdmin,
    settings: ApiSettings,
    *,
    by_superuser: bool,
) -> User:
    """Apply the fields sent to `user`, its row locked (identity.user_lock) and so as it
    is now: a password changed meanwhile bumps `token_version` from its new value, and a
    deletion meanwhile was seen by the lock. A new email is unverified until its own
    link is followed: the verification email goes to the new address, and a notice of
    the change to the old one (saying whether a superuser made it). A new password's
    notice goes to the address the account has after the change."""
    changes = data.model_dump()  # the fields sent: an omitted one is MISSING, left out
    changes.pop("current_password", None)  # checked by update_me
    password = changes.pop("password", None)
    old_email = user.email
    new_email = _changes_email(data.email, old_email)
    deactivated = changes.get("is_active") is False
    for field, value in changes.items():
        setattr(user, field, value)
    if "username" in changes:
        user.slug = slugify(changes["username"])
    if new_email:
        user.email_verified_at = None
    if password is not None:
        _set_password(user, password)
    elif deactivated:
        # Its access tokens end for good: reactivated, the account gets none of them back.
        user.token_version += 1
    # After the save: it flushes the user first and turns a taken name into a 409.
    saved = await UserRepository(session).save(user)
    if password is not None:
        await _after_a_new_password(session, saved, settings, by_superuser=by_superuser)
    elif deactivated:
        await revoke_all_sessions(session, user.id)
    if deactivated or new_email:
        # The links already mailed stop working, and stay dead: after a reactivation, or
        # if the old address comes back.
        await account_tokens.delete_outstanding(session, user.id, *_MAILED_LINKS)
    if new_email:
        await account_emails.mail_verification_after_commit(session, saved, settings)
        await account_emails.mail_email_changed_after_commit(
            session, old_email, settings, by_superuser=by_superuser
        )
    return saved


def _changes_email(email: str | MISSING, current: str) -> bool:
    return email is not MISSING and email != current


async def resend_verification(session: AsyncSession, user: User, settings: ApiSettings) -> None:
    """A new link, its token committed before it is sent: the caller learns whether it went."""
    if user.email_verified:
        raise EmailAlreadyVerified()
    delivery = await account_emails.send_verification_now(session, user.id, settings)
    if delivery is None:  # verified since the request read the user
        raise EmailAlreadyVerified()
    if delivery.outcome is Outcome.THROTTLED:
        raise TooManyEmails(retry_after_seconds=delivery.retry_after_seconds)
    if delivery.outcome is Outcome.NOT_SENT:
        raise AccountEmailsUnavailable()


async def change_password(
    session: AsyncSession, user: User, data: PasswordChange, settings: ApiSettings
) -> None:
    user_id = user.id  # read before the guess's own transaction expires the loaded row
    checked = await _check_current_password(session, user_id, data.current_password, settings)
    current = await _locked_caller(session, user_id, checked)
    await set_new_password(session, current, data.new_password, settings)


async def _check_current_password(
    session: AsyncSession, user_id: int, password: str, settings: ApiSettings
) -> str:
    """Check the caller's current password; the hash it was checked against. A wrong one
    is a guess at the account's password like a failed login, and counts against the same
    limit (identity.password_attempts), in a transaction of its own: the request's ends
    first, expiring what it loaded."""
    async with transaction_of_its_own(session) as own:
        stored = await UserRepository(own).get(user_id)
        if stored is None:  # deleted since the request began: the caller is gone
            raise NotAuthenticated()
        hashed = stored.hashed_password
        outcome = await password_attempts.guess(
            own,
            password_attempts.keys_for(user_id=user_id),
            settings,
            lambda: verify_password(password, hashed)[0],
        )
    if outcome.locked_for:
        raise TooManyPasswordAttempts(retry_after_seconds=outcome.locked_for)
    if not outcome.right:
        raise WrongCurrentPassword()
    return hashed


async def _locked_caller(session: AsyncSession, user_id: int, checked: str | None) -> User:
    """The caller's row, locked; a 401 if deleted, and a wrong password if it changed
    since `checked` (the hash a current password was checked against, if any)."""
    current = await locked_user(session, user_id)
    if current is None:
        raise NotAuthenticated()
    if checked is not None and current.hashed_password != checked:
        raise WrongCurrentPassword()
    return current


async def set_new_password(
    session: AsyncSession, user: User, password: str, settings: ApiSettings
) -> None:
    """Set the user's own new password (theirs, or a reset link's) and end everything
    issued before: access tokens (their version is bumped), every session and every
    reset link not yet used; the account's address is told once it commits."""
    _set_password(user, password)
    saved = await UserRepository(session).save(user)
    await _after_a_new_password(session, saved, settings, by_superuser=False)


async def _after_a_new_password(
    session: AsyncSession, user: User, settings: ApiSettings, *, by_superuser: bool
) -> None:
    """After a new password, however it was set: every session ends, and so do the reset
    links already sent (one left in a mailbox someone else reads would set a password of
    their choosing). The account's current address is sent a notice once the change has
    committed (ASVS V2.2.3): a password changed by someone else is then seen."""
    await revoke_all_sessions(session, user.id)
    await account_tokens.delete_outstanding(session, user.id, TokenPurpose.RESET_PASSWORD)
    await account_emails.mail_password_changed_after_commit(
        session, user.email, settings, by_superuser=by_superuser
    )


async def delete(session: AsyncSession, *, actor: User, user_id: int) -> None:
    if actor.id == user_id:
        raise CannotDeleteSelf()
    # The superusers' rows first (identity.user_lock), FOR UPDATE as the DELETE locks the
    # user's. None left but the user: it is the last (or the caller itself has stopped
    # being a superuser meanwhile, and may delete no one).
    superusers = await locked_active_superusers(session, deleting=True)
    if not _another_remains(superusers, user_id):
        raise LastSuperuser()
    # Its refresh tokens go with it (ON DELETE CASCADE): every session ends.
    if not await UserRepository(session).delete(user_id):
        raise UserNotFound()  # never there, or deleted by a request that came first


def _another_remains(superusers: list[int], user_id: int) -> bool:
    """Whether an active superuser other than `user_id` is among `superusers` (locked)."""
    return any(superuser != user_id for superuser in superusers)


def _set_password(user: User, password: str) -> None:
    user.hashed_password = hash_password(password)
    # Tokens carry the version they were issued for: this revokes all older tokens.
    user.token_version += 1
