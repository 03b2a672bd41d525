"""The emails about an account: a password-reset link, an email-verification link, and
two notices: to the old address that the email changed, and to the account's address
that the password changed.

The links carry a single-use token (lambda_app/identity/account_tokens.py) to the
frontend; the notices carry none. Sending is throttled per address
(lambda_app/identity/email_throttle.py). A message goes only once the transaction that
stored its token (or made its change) has committed: a link in a mailbox always works,
and no notice tells of a change that did not happen. A message that can't be sent is
logged and counted (`MailFailures`), never raised: the account change that asked for it
(a registration, a new email) has happened and stands. Neither the log lines nor the
errors carry the token.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from enum import Enum
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app import mail
from lambda_app.core import metrics
from lambda_app.core.errors import AppError, NotAuthenticated
from lambda_app.core.settings import ApiSettings
from lambda_app.db.session import after_commit, transaction_of_its_own
from lambda_app.identity import account_tokens, email_throttle
from lambda_app.identity.user_lock import locked_user
from lambda_app.models import TokenPurpose, User

logger = logging.getLogger(__name__)

RESET_PATH = "reset-password"
VERIFY_PATH = "verify-email"
# The notices' names in the email throttle and the log lines (a TokenPurpose names the links).
EMAIL_CHANGED = "email_changed"
PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a notice's name, not a password
# How a notice ends when a superuser made the change.
_BY_AN_ADMINISTRATOR = (
    "An administrator made the change. If you did not ask for it, contact the\nservice's support.\n"
)


class AccountEmailsUnavailable(AppError):
    """No mail backend (a stack deployed without `-c email_from`), or SES failed."""

    status_code = 503
    code = "mail_unavailable"
    message = "Email could not be sent, try again later"


class Outcome(Enum):
    READY = "ready"  # its token stored, its message composed: to send once committed
    SENT = "sent"
    THROTTLED = "throttled"  # the address had its hourly share
    NOT_SENT = "not_sent"  # no mail backend, or SES failed (logged, counted)


@dataclass(frozen=True)
class Delivery:
    outcome: Outcome
    retry_after_seconds: int = 0  # when THROTTLED
    message: mail.Message | None = None  # when READY


def mail_configured(settings: ApiSettings) -> bool:
    return settings.mail_backend is not None


async def issue_password_reset(
    session: AsyncSession, user: User, settings: ApiSettings
) -> mail.Message:
    """Store a reset token and compose the message carrying its link (sent by the caller,
    once the token is committed)."""
    minutes = settings.password_reset_expire_minutes
    lifetime = dt.timedelta(minutes=minutes)
    token = await account_tokens.issue(session, user, TokenPurpose.RESET_PASSWORD, lifetime)
    text = (
        f"Hello {user.username},\n\n"
        "Someone asked to reset the password of your account. To choose a new password,\n"
        f"open this link within {minutes} minutes (it works once):\n\n"
        f"{mail.link(RESET_PATH, token)}\n\n"
        "If it wasn't you, ignore this message: your password stays as it is.\n"
    )
    return mail.Message(to=user.email, subject="Reset your password", text=text)


async def prepare_verification(
    session: AsyncSession, user: User, settings: ApiSettings
) -> Delivery:
    """A verification link for the user's current address, READY to send once `session`
    commits its token, unless the address had its hourly share already. Without a mail
    backend there is none (logged). Nothing is sent here."""
    if not mail_configured(settings):
        logger.warning("no mail backend: email verification not sent")
        return Delivery(Outcome.NOT_SENT)
    allowance = await throttle(session, TokenPurpose.VERIFY_EMAIL, user.email, settings)
    if not allowance.allowed:
        return Delivery(Outcome.THROTTLED, allowance.retry_after_seconds)
    hours = settings.email_verification_expire_hours
    lifetime = dt.timedelta(hours=hours)
    token = await account_tokens.issue(session, user, TokenPurpose.VERIFY_EMAIL, lifetime)
    text = (
        f"Hello {user.username},\n\n"
        f"To confirm that {user.email} is your address, open this link within {hours} hours:\n\n"
        f"{mail.link(VERIFY_PATH, token)}\n\n"
        "If you didn't create an account or change your email, ignore this message.\n"
    )
    message = mail.Message(to=user.email, subject="Verify your email address", text=text)
    return Delivery(Outcome.READY, message=message)


async def deliver_verification(delivery: Delivery, settings: ApiSettings) -> Delivery:
    """Send a READY verification, its token committed by now; what became of it. Any
    other delivery is returned as it is."""
    if delivery.message is None:
        return delivery
    sent = await deliver(delivery.message, TokenPurpose.VERIFY_EMAIL, settings)
    return Delivery(Outcome.SENT if sent else Outcome.NOT_SENT)


async def mail_verification_after_commit(
    session: AsyncSession, user: User, settings: ApiSettings
) -> None:
    """For a request's own session (`DbSession`): a verification link that goes once the
    request's transaction has committed, and never if it rolls back."""
    delivery = await prepare_verification(session, user, settings)
    if delivery.message is not None:
        after_commit(session, partial(deliver_verification, delivery, settings))


async def mail_email_changed_after_commit(
    session: AsyncSession,
    old_email: str,
    settings: ApiSettings,
    *,
    by_superuser: bool,
) -> None:
    """For a request's own session: tell `old_email` that the account's email changed,
    once the change has committed (never if it rolls back), unless that address had its
    hourly share of notices. Without a mail backend there is none (logged).

    No link and no token: whoever reads the old mailbox gets nothing to act with. Nor the
    new address, nor the username: the old mailbox's owner may not be the account's (a
    typo at registration).
    """
    who = (
        _BY_AN_ADMINISTRATOR
        if by_superuser
        else "If it was you, ignore this message. If it wasn't, someone who knows your\n"
        "password made the change: contact the service's support to get your account back.\n"
    )
    text = (
        "Hello,\n\n"
        f"The email address of your account was changed: {old_email} no longer receives\n"
        "its messages, password reset links included.\n\n" + who
    )
    message = mail.Message(to=old_email, subject="Your email address was changed", text=text)
    await _notice_after_commit(session, EMAIL_CHANGED, message, settings)


async def mail_password_changed_after_commit(
    session: AsyncSession,
    email: str,
    settings: ApiSettings,
    *,
    by_superuser: bool,
) -> None:
    """For a request's own session: tell `email`, the account's address, that its
    password changed (by the user, a reset link or a superuser), once the change has
    committed, as the email change notice is, and throttled and configured as it is.

    No link, no token and no username, as the email change notice: the address may be
    one nobody verified (a typo), and its reader gets nothing to act with.
    """
    who = (
        _BY_AN_ADMINISTRATOR
        if by_superuser
        else "If it was you, ignore this message. If it wasn't, someone who knows your\n"
        "password or reads your email made the change: contact the service's support to\n"
        "get your account back.\n"
    )
    text = (
        "Hello,\n\n"
        "The password of your account was changed, and every device signed in to it\n"
        "was signed out.\n\n" + who
    )
    message = mail.Message(to=email, subject="Your password was changed", text=text)
    await _notice_after_commit(session, PASSWORD_CHANGED, message, settings)


async def _notice_after_commit(
    session: AsyncSession, purpose: str, message: mail.Message, settings: ApiSettings
) -> None:
    """Send a notice (`purpose`: EMAIL_CHANGED or PASSWORD_CHANGED) once `session` has
    committed, never if it rolls back, unless its address had its hourly share of that
    notice. Without a mail backend there is none (logged)."""
    if not mail_configured(settings):
        logger.warning("no mail backend: notice not sent", extra={"fields": {"purpose": purpose}})
        return
    # Per whole address: another account at a subaddress of its mailbox can't use it up.
    allowance = await throttle(session, purpose, message.to, settings, per_mailbox=False)
    if allowance.allowed:
        after_commit(session, partial(deliver, message, purpose, settings))


async def send_verification_now(
    request_session: AsyncSession, user_id: int, settings: ApiSettings
) -> Delivery | None:
    """A verification link, in a transaction of its own committed before the mail goes.
    None if the address is verified already; an account deleted meanwhile is a 401, as
    any request of a deleted user is.

    For a request that needs the outcome (a resend answers 429 or 503), or that fails
    (a login refused for an unverified email rolls back, but its link must work).
    """
    async with transaction_of_its_own(request_session) as session:
        # Locked: a deletion waits until the link's token is stored (or finds it to delete).
        user = await locked_user(session, user_id)
        if user is None:
            raise NotAuthenticated()
        if user.email_verified:
            return None
        delivery = await prepare_verification(session, user, settings)
    return await deliver_verification(delivery, settings)


async def throttle(
    session: AsyncSession,
    purpose: str,
    email: str,
    settings: ApiSettings,
    *,
    per_mailbox: bool = True,
) -> email_throttle.Allowance:
    """One more email of `purpose` (a TokenPurpose, EMAIL_CHANGED or PASSWORD_CHANGED)
    asked for `email` (`email_throttle.take`: a notice is counted per whole address)."""
    allowance = await email_throttle.take(
        session,
        purpose,
        email,
        per_hour=settings.account_emails_per_hour,
        per_mailbox=per_mailbox,
    )
    if not allowance.allowed:
        logger.info("account email throttled", extra={"fields": {"purpose": str(purpose)}})
        metrics.count(metrics.ACCOUNT_EMAILS_THROTTLED, stage=settings.environment)
    return allowance


async def deliver(
    message: mail.Message, purpose: str, settings: ApiSettings, *, within: float | None = None
) -> bool:
    """Send `message`, taking no longer than `within` seconds if given (`mail.send`);
    whether it went. Any failure is logged and counted, never raised: an error only an
    existing account could cause would tell who has one."""
    try:
        await mail.send(message, within=within)
    except mail.MailNotSentInTime as exc:
        # What `within` costs, not a fault: a warning. The domain only, as SES's lines.
        fields = {"purpose": str(purpose), "reason": str(exc), "to_domain": message.to_domain}
        logger.warning("account email not sent in time", extra={"fields": fields})
        metrics.count(metrics.MAIL_FAILURES, stage=settings.environment)
        return False
    except (mail.MailNotSent, mail.MailNotConfigured) as exc:
        # The reason (an SES error code, a missing setting), never the message itself.
        reason = str(exc)
    except Exception as exc:
        # Its type only: an unexpected error's text could quote the message.
        reason = f"unexpected {type(exc).__name__}"
    else:
        return True
    logger.error(
        "account email not sent", extra={"fields": {"purpose": str(purpose), "reason": reason}}
    )
    metrics.count(metrics.MAIL_FAILURES, stage=settings.environment)
    return False
