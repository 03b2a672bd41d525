"""Outgoing mail: `await send(Message(...))`, with links built by `link(path, token)`.

The backend follows the settings (`EMAIL_BACKEND`): `file` locally (an `.eml` file per
message under `MAIL_DIR`), `ses` on AWS (Amazon SES through the VPC's SES API endpoint,
from `EMAIL_FROM`). Without a backend (on AWS without `-c email_from`), `send` raises
`MailNotConfigured`. docs/deploying.md, "Email", has the infrastructure.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache

from lambda_app.core.deadline import seconds_left
from lambda_app.core.settings import EmailBackend, get_settings
from lambda_app.mail.backends import (
    FileMailer,
    Mailer,
    MailNotConfigured,
    MailNotSent,
    MailNotSentInTime,
    SesMailer,
)
from lambda_app.mail.message import Message, frontend_link

__all__ = [
    "MailNotConfigured",
    "MailNotSent",
    "MailNotSentInTime",
    "Mailer",
    "Message",
    "get_mailer",
    "link",
    "send",
]

# The sender of local messages when EMAIL_FROM is unset (nothing is delivered locally).
LOCAL_SENDER = "no-reply@localhost"
# A send still waiting this long before the request's deadline is given up on, leaving
# the time to answer. SES's client retries (core.aws) could otherwise outlast it.
GIVE_UP_BEFORE_DEADLINE_SECONDS = 0.5


@lru_cache(maxsize=1)
def get_mailer() -> Mailer:
    """The mailer of this process's settings, made once (a cheap object: no client yet)."""
    settings = get_settings()
    backend = settings.mail_backend
    if backend is EmailBackend.FILE:
        return FileMailer(settings.mail_dir, sender=settings.email_from or LOCAL_SENDER)
    if backend is EmailBackend.SES and settings.email_from is not None:
        return SesMailer(sender=settings.email_from)
    raise MailNotConfigured(
        f"no mail backend with ENVIRONMENT={settings.environment}: deploy the stack with "
        "-c email_from=... -c frontend_url=... (docs/deploying.md, Email)"
    )


async def send(message: Message, *, within: float | None = None) -> None:
    """Send `message`. SES is a blocking HTTPS call: it runs in a worker thread, so the
    event loop keeps serving (the log lines keep the request's trace id).

    Within a request, a send not done shortly before its deadline raises `MailNotSent`.
    That holds after the COMMIT too, where the deadline no longer cancels: the write
    stood, and its client must hear so, not get the gateway's bare 5xx.

    With `within`, the send takes no longer than that many seconds, whatever SES does: it
    is tried once, with timeouts inside them (`SesMailer`), and given up on when they
    are over (`MailNotSentInTime`; none left, it isn't tried). For an answer whose
    timing must not depend on SES (a password recovery's)."""
    mailer = get_mailer()
    left = seconds_left()
    limit = None if left is None else max(0.0, left - GIVE_UP_BEFORE_DEADLINE_SECONDS)
    hurried = within is not None and (limit is None or within < limit)  # `within` binds
    if hurried:
        limit = within
    if within is not None and limit is not None and limit <= 0:
        raise _given_up(hurried, "no time was left to send it")
    try:
        async with asyncio.timeout(limit) as waiting:
            bound = None if within is None else limit  # the mailer keeps inside it too
            await asyncio.to_thread(mailer.send, message, within=bound)
    except TimeoutError:
        if not waiting.expired():
            raise  # the request's own deadline, not this one
        # The worker thread can't be stopped: the message may still go.
        raise _given_up(hurried, "no answer in time (it may still go)") from None


def _given_up(hurried: bool, why: str) -> MailNotSent:
    if hurried:
        return MailNotSentInTime(f"{why}: not within the time given")
    return MailNotSent(f"{why}: not before the request's deadline")


def link(path: str, token: str) -> str:
    """`{FRONTEND_URL}/{path}?token=…`, e.g. `link("reset-password", token)`."""
    frontend_url = get_settings().mail_frontend_url
    if frontend_url is None:
        raise MailNotConfigured("FRONTEND_URL is not set: links in messages need it")
    return frontend_link(frontend_url, path, token)
