"""A message to one recipient, and the link it carries to the frontend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

if TYPE_CHECKING:
    from email.message import EmailMessage


@dataclass(frozen=True)
class Message:
    """Plain text, optionally with an HTML alternative. One recipient: a mail about an
    account (a reset link, a verification link) goes to that account's address only."""

    to: str
    subject: str
    text: str
    html: str | None = None

    @property
    def to_domain(self) -> str:
        """The recipient's domain: what a log line names instead of the address, which is
        personal data."""
        return self.to.rpartition("@")[2]

    def to_email(self, sender: str) -> EmailMessage:
        """The MIME message, as SES sends it and as the file backend writes it."""
        # Imported on the first mail, not at import: the email package's MIME policy
        # and header parser are half a MiB and 5 ms of every cold start otherwise,
        # and most requests send no mail.
        from email.message import EmailMessage
        from email.policy import SMTP
        from email.utils import make_msgid

        message = EmailMessage(policy=SMTP)
        message["From"] = sender
        message["To"] = envelope_address(self.to)
        message["Subject"] = self.subject
        message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip("> ") or None)
        message.set_content(self.text, cte=_transfer_encoding(self.text))
        if self.html is not None:
            message.add_alternative(self.html, subtype="html")
        return message

    def to_bytes(self, sender: str) -> bytes:
        """The raw message, with the CRLF line endings of its SMTP policy, as SES's raw
        mail wants them."""
        return self.to_email(sender).as_bytes()


# What SMTP allows on one line (RFC 5321), without the CRLF.
SMTP_LINE_MAX = 998


def _transfer_encoding(text: str) -> str:
    """`7bit` for plain ASCII, so a link stays on one line of the raw message and can be
    copied from the `.eml` file; quoted-printable (which wraps at 76) for anything else."""
    fits = all(len(line) <= SMTP_LINE_MAX for line in text.splitlines())
    return "7bit" if text.isascii() and fits else "quoted-printable"


class UndeliverableAddress(ValueError):
    """An address SES can't take: a local part beyond ASCII needs SMTPUTF8."""


def envelope_address(address: str) -> str:
    """The address as mail without SMTPUTF8 carries it: the domain in IDNA (punycode),
    `ada@exämple.com` -> `ada@xn--exmple-cua.com`."""
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise UndeliverableAddress("a non-ASCII local part needs SMTPUTF8, which SES lacks")
    if domain.isascii():
        return address
    # IDNA 2008 (UTS 46), with the `idna` package email_validator checked the address
    # with (Python's own "idna" codec is IDNA 2003: it maps some letters, ß, differently).
    import idna

    try:
        return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"
    except idna.IDNAError:
        raise UndeliverableAddress("the domain has no IDNA form") from None


def frontend_link(frontend_url: str, path: str, token: str) -> str:
    """`{frontend_url}/{path}?token=…`, the path and the token percent-encoded."""
    return f"{frontend_url.rstrip('/')}/{quote(path.strip('/'))}?{urlencode({'token': token})}"
