"""Outgoing mail: an `.eml` file locally, Amazon SES (moto) on AWS, and links that carry a
token to the frontend without the token ever reaching a log line."""

from __future__ import annotations

import asyncio
import email
import logging
from collections.abc import Iterator
from email.message import Message as ParsedMessage
from email.policy import default
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from lambda_app import mail
from lambda_app.core.settings import ApiSettings, SettingsError, get_settings, load_settings
from lambda_app.mail import MailNotConfigured, MailNotSent, Message
from tests.fixtures.fresh_interpreter import run_python

# Everything a URL quotes, so the test sees the quoting work.
TOKEN = "tok-3f9a+/=&?#%20 end"
SENDER = "no-reply@example.com"
RECIPIENT = "ada@example.org"
FRONTEND = "https://app.example.com"


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    mail.get_mailer.cache_clear()
    yield
    get_settings.cache_clear()
    mail.get_mailer.cache_clear()


def _reset_message() -> Message:
    url = mail.link("reset-password", TOKEN)
    return Message(
        to=RECIPIENT, subject="Reset your password", text=f"Open this link to reset it:\n{url}\n"
    )


def _parse(raw: bytes | str) -> ParsedMessage:
    if isinstance(raw, str):
        return email.message_from_string(raw, policy=default)
    return email.message_from_bytes(raw, policy=default)


def _token_of_link_in(parsed: ParsedMessage) -> tuple[str, str]:
    body = parsed.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
    (url,) = [w for w in body.get_content().split() if w.startswith("http")]
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}", parse_qs(parts.query)["token"][0]


def test_link_points_at_the_frontend_and_quotes_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRONTEND_URL", FRONTEND + "/")

    url = mail.link("/reset-password", TOKEN)

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{FRONTEND}/reset-password"
    assert parse_qs(parts.query) == {"token": [TOKEN]}
    assert " " not in url and "#" not in url


async def test_locally_each_message_is_an_eml_file_and_the_log_has_no_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # given the local defaults, with the mail folder in a temporary place
    monkeypatch.delenv("EMAIL_BACKEND", raising=False)
    monkeypatch.setenv("MAIL_DIR", str(tmp_path / "mail"))
    caplog.set_level(logging.DEBUG)

    # when two messages are sent
    await mail.send(_reset_message())
    await mail.send(Message(to="bob@example.org", subject="Second", text="no link"))

    # then there is one file each, in the order they were sent
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 2
    first, second = (_parse(f.read_bytes()) for f in files)
    assert (first["To"], first["Subject"], first["From"]) == (
        RECIPIENT,
        "Reset your password",
        "no-reply@localhost",
    )
    assert second["Subject"] == "Second"
    # the local developer follows the link from the file...
    assert _token_of_link_in(first) == ("http://localhost:3000/reset-password", TOKEN)
    # ...while the log names the subject and recipient, never the token
    logged = [r for r in caplog.records if r.name.startswith("lambda_app.mail")]
    assert logged[0].fields["subject"] == "Reset your password"  # type: ignore[attr-defined]
    assert logged[0].fields["to"] == RECIPIENT  # type: ignore[attr-defined]
    assert TOKEN not in caplog.text and "token=" not in caplog.text


def test_an_ascii_link_stays_on_one_line_of_the_raw_file() -> None:
    url = "http://localhost:3000/reset-password?token=" + "T" * 43
    raw = Message(to=RECIPIENT, subject="Reset", text=f"Open it:\n{url}\n").to_email(SENDER)
    assert url in raw.as_string().splitlines()  # copied as it is from the .eml file

    accented = Message(to=RECIPIENT, subject="Réinitialiser", text=f"Voilà :\n{url}\n")
    parsed = _parse(accented.to_bytes(SENDER))
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    assert _token_of_link_in(parsed)[1] == "T" * 43


@pytest.fixture
def on_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A deployed stage with the SES backend, against moto's SES."""
    from moto import mock_aws

    for name, value in {
        "ENVIRONMENT": "dev",
        "EMAIL_BACKEND": "ses",
        "EMAIL_FROM": SENDER,
        "FRONTEND_URL": FRONTEND,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


def _sent_through_ses() -> list[object]:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return list(ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages)


async def test_on_aws_ses_delivers_the_link_and_no_log_line_holds_the_token(
    on_aws: None, caplog: pytest.LogCaptureFixture
) -> None:
    import boto3

    # given a verified sender, and every log line captured (boto's included)
    boto3.client("sesv2", region_name="us-east-1").create_email_identity(EmailIdentity=SENDER)
    caplog.set_level(logging.DEBUG)

    # when
    await mail.send(_reset_message())

    # then SES got one message, to the user, with the link to the frontend
    (sent,) = _sent_through_ses()
    assert sent.source == SENDER  # type: ignore[attr-defined]
    assert set(sent.destinations) == {RECIPIENT}  # type: ignore[attr-defined]
    parsed = _parse(sent.raw_data)  # type: ignore[attr-defined]
    assert (parsed["To"], parsed["Subject"]) == (RECIPIENT, "Reset your password")
    assert _token_of_link_in(parsed) == (f"{FRONTEND}/reset-password", TOKEN)
    # and no log line anywhere carries the token, nor the recipient's full address
    assert caplog.records
    assert TOKEN not in caplog.text and "token=" not in caplog.text
    assert RECIPIENT not in caplog.text


async def test_an_ses_refusal_names_the_error_not_the_message(
    on_aws: None, caplog: pytest.LogCaptureFixture
) -> None:
    # given a sender SES never verified
    caplog.set_level(logging.DEBUG)

    with pytest.raises(MailNotSent) as raised:
        await mail.send(_reset_message())

    assert "MessageRejected" in str(raised.value) and raised.value.__cause__ is None
    assert TOKEN not in str(raised.value) and RECIPIENT not in str(raised.value)
    assert TOKEN not in caplog.text and _sent_through_ses() == []


def test_outside_local_without_a_backend_nothing_is_sent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the stack deployed without -c email_from: no EMAIL_BACKEND, no FRONTEND_URL
    monkeypatch.setenv("ENVIRONMENT", "dev")
    monkeypatch.setenv("MAIL_DIR", str(tmp_path))
    for name in ("EMAIL_BACKEND", "EMAIL_FROM", "FRONTEND_URL"):
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(MailNotConfigured, match="email_from"):
        asyncio.run(mail.send(Message(to=RECIPIENT, subject="Hello", text="Hi")))
    with pytest.raises(MailNotConfigured, match="FRONTEND_URL"):
        mail.link("reset-password", TOKEN)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("environment", "variable"),
    [
        # the code folder is read-only on Lambda: no file backend outside local
        ({"ENVIRONMENT": "dev", "EMAIL_BACKEND": "file"}, "EMAIL_BACKEND"),
        ({"ENVIRONMENT": "local", "EMAIL_BACKEND": "ses"}, "EMAIL_FROM"),
        (
            {"ENVIRONMENT": "prod", "EMAIL_BACKEND": "ses", "EMAIL_FROM": SENDER},
            "FRONTEND_URL",
        ),
        ({"ENVIRONMENT": "prod", "FRONTEND_URL": "http://app.example.com"}, "FRONTEND_URL"),
        ({"FRONTEND_URL": "https://app.example.com/?next=1"}, "FRONTEND_URL"),
        ({"EMAIL_FROM": "not an address"}, "EMAIL_FROM"),
        ({"EMAIL_BACKEND": "smtp"}, "EMAIL_BACKEND"),
    ],
)
def test_unfit_mail_settings_are_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], variable: str
) -> None:
    for name in ("EMAIL_BACKEND", "EMAIL_FROM", "FRONTEND_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(SettingsError) as raised:
        load_settings(ApiSettings)

    assert [p.variable for p in raised.value.problems] == [variable]


def test_the_email_policy_loads_with_the_first_mail_not_with_the_app() -> None:
    # A fresh interpreter: this one has long imported the email package.
    code = (
        "import sys\n"
        "import lambda_app.handlers.api\n"
        "assert 'email.policy' not in sys.modules, 'the app imported email.policy'\n"
        "from lambda_app.mail import Message\n"
        f"raw = Message(to={RECIPIENT!r}, subject='Hi', text='Hello\\n').to_bytes({SENDER!r})\n"
        "assert raw.endswith(b'Hello\\r\\n'), raw\n"
        "assert 'email.policy' in sys.modules\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
