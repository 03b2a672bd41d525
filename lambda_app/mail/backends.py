"""The two ways a message leaves: a file on the developer's disk, or Amazon SES.

Log lines name the subject and, locally, the recipient, never the body: the body carries
links with single-use tokens. Errors name the SES error code, never the message.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from lambda_app.core import aws
from lambda_app.mail.message import Message, envelope_address

logger = logging.getLogger(__name__)


class MailNotConfigured(RuntimeError):
    """No backend for this stage: on AWS, the stack was deployed without `-c email_from`."""


class MailNotSent(RuntimeError):
    """SES refused or could not be reached. The message says why, never what was sent."""


class MailNotSentInTime(MailNotSent):
    """Not sent within the time its caller gave it (`send(..., within=)`): given up on."""


class Mailer(Protocol):
    # `within`: the seconds the caller waits at most; a backend that can bound its own
    # wait (SES's timeouts and retries) keeps inside them.
    def send(self, message: Message, *, within: float | None = None) -> object: ...


class FileMailer:
    """Local development: each message becomes one `.eml` file under `directory`.

    Names sort by the time of sending (UTC, to the microsecond) and a random suffix keeps
    two messages of one microsecond apart. Any mail client opens them.
    """

    def __init__(self, directory: Path, *, sender: str) -> None:
        self.directory = directory
        self.sender = sender

    def send(self, message: Message, *, within: float | None = None) -> Path:
        del within  # a local write: nothing to bound
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}.eml"
        path = self.directory / name
        with path.open("xb") as file:  # exclusive: never overwrite another message
            file.write(message.to_bytes(self.sender))
        logger.info(
            "mail written to a file",
            extra={"fields": {"subject": message.subject, "to": message.to, "path": str(path)}},
        )
        return path


class SesMailer:
    """Amazon SES (API v2 `SendEmail`, raw content: the same MIME message as locally).

    The client is made at the first send, never at init (SnapStart's snapshot holds no
    client), and kept for the container's later sends. A send given `within` seconds
    gets a client of its own: one attempt, no retry, and connect and read timeouts of
    `within`, so that the worker thread is done soon after its caller gave up (a few ms
    to make, with the models loaded; its connection is part of what `within` covers).
    """

    def __init__(self, *, sender: str) -> None:
        self.sender = sender
        self._client: Any = None

    def send(self, message: Message, *, within: float | None = None) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        if within is not None:
            ses = aws.client("sesv2", attempts=1, connect_timeout=within, read_timeout=within)
        else:
            if self._client is None:
                self._client = aws.client("sesv2")
            ses = self._client
        raw = message.to_bytes(self.sender)
        try:
            response = ses.send_email(
                FromEmailAddress=self.sender,
                Destination={"ToAddresses": [envelope_address(message.to)]},
                Content={"Raw": {"Data": raw}},
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "unknown")
            raise MailNotSent(f"SES refused the message: {code}") from None
        except BotoCoreError as exc:
            raise MailNotSent(f"SES could not be reached: {type(exc).__name__}") from None
        message_id = str(response["MessageId"])
        # The recipient's domain only: the full address is personal data, and the SES
        # message id finds the delivery in SES's own events.
        logger.info(
            "mail sent through SES",
            extra={
                "fields": {
                    "subject": message.subject,
                    "to_domain": message.to_domain,
                    "ses_message_id": message_id,
                }
            },
        )
        return message_id
