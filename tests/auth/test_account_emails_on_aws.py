"""Account emails on a deployed stage: Amazon SES (moto), the same links as locally, no
token in any log line at any level, and a failing or missing SES that breaks nothing
else and tells nobody who has an account."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.awsrequest import AWSResponse
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app import mail
from lambda_app.auth.router import RECOVERY_ACCEPTED
from lambda_app.core import metrics
from lambda_app.core.logging import JsonFormatter, configure_logging
from lambda_app.core.settings import get_settings
from lambda_app.models import User
from tests.fixtures.accounts import DEFAULT_PASSWORD, Credentials
from tests.fixtures.aws import moto_aws
from tests.fixtures.mailbox import sent_through_moto_ses
from tests.fixtures.polling import WITHIN_SECONDS, wait_until

SENDER = "no-reply@example.com"
FRONTEND = "https://app.example.com"
REGION = "us-east-1"
RECOVERY = "/api/auth/password-recovery"


def _settle() -> None:
    get_settings.cache_clear()
    mail.get_mailer.cache_clear()


@pytest.fixture
async def app_in_service(client: httpx.AsyncClient) -> None:
    """The shared app has answered a request: Starlette builds its middleware (which
    reads the stage once) on the first one, and that must not happen on a stage below."""
    assert (await client.get("/api/health")).status_code == 200


@pytest.fixture
def deployed_stage(monkeypatch: pytest.MonkeyPatch, app_in_service: None) -> Iterator[None]:
    """ENVIRONMENT=dev as the stack sets it with `-c email_from`, against moto."""
    for name, value in {
        "ENVIRONMENT": "dev",
        "EMAIL_BACKEND": "ses",
        "EMAIL_FROM": SENDER,
        "FRONTEND_URL": FRONTEND,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with moto_aws(monkeypatch, REGION):
        _settle()
        yield
    monkeypatch.undo()
    _settle()


@pytest.fixture
def verified_sender(deployed_stage: None) -> None:
    boto3.client("sesv2", region_name=REGION).create_email_identity(EmailIdentity=SENDER)


@pytest.fixture
def every_log_line(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """DEBUG everywhere, as with LOG_LEVEL=DEBUG, the SDK's loggers included."""
    configure_logging("DEBUG")
    caplog.set_level(logging.DEBUG)
    yield caplog
    configure_logging("INFO")


def _as_written(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured line as production writes it: JSON, with its extra fields."""
    formatter = JsonFormatter()
    return "\n".join(formatter.format(record) for record in caplog.records)


async def test_a_reset_link_goes_through_ses_and_no_log_line_holds_its_token(
    client: httpx.AsyncClient,
    user: User,
    verified_sender: None,
    every_log_line: pytest.LogCaptureFixture,
) -> None:
    response = await client.post("/api/auth/password-recovery", json={"email": user.email})

    assert response.status_code == 202, response.text
    (sent,) = sent_through_moto_ses(REGION)
    assert (sent.to, sent.subject) == (user.email, "Reset your password")
    assert sent.page == f"{FRONTEND}/reset-password"
    reset = await client.post(
        "/api/auth/reset-password", json={"token": sent.token, "new_password": "new pass phrase"}
    )
    assert reset.status_code == 204, reset.text
    logged = _as_written(every_log_line)
    assert "mail sent through SES" in logged  # the capture works, and it holds...
    assert sent.token not in logged and "token=" not in logged
    assert user.email not in logged  # ...no full address either
    # the SDK's DEBUG lines (whole request bodies) stay off, even at LOG_LEVEL=DEBUG
    assert not [
        r for r in every_log_line.records if r.name.startswith("botocore") and r.levelno < 20
    ]


async def test_registration_sends_its_verification_link_through_ses(
    client: httpx.AsyncClient, verified_sender: None, every_log_line: pytest.LogCaptureFixture
) -> None:
    account = Credentials.new("ses")

    created = await client.post("/api/auth/register", json=account.registration())

    assert created.status_code == 201, created.text
    (sent,) = sent_through_moto_ses(REGION)
    assert (sent.to, sent.subject) == (
        f"{account.username}@example.com",
        "Verify your email address",
    )
    assert sent.page == f"{FRONTEND}/verify-email"
    assert (
        await client.post("/api/auth/verify-email", json={"token": sent.token})
    ).status_code == 204
    assert sent.token not in _as_written(every_log_line)


async def test_when_ses_refuses_the_answers_stay_the_same_and_the_failure_is_counted(
    client: httpx.AsyncClient,
    session: AsyncSession,
    user: User,
    deployed_stage: None,  # the sender was never verified: SES answers MessageRejected
    user_headers: dict[str, str],
    every_log_line: pytest.LogCaptureFixture,
    emf_lines: list[str],
) -> None:
    # recovery: the same 202 as for any address
    recovery = await client.post("/api/auth/password-recovery", json={"email": user.email})
    assert recovery.status_code == 202 and recovery.json() == {"message": RECOVERY_ACCEPTED}
    # registration: the account is made; the link can be sent again later
    account = Credentials.new("ses_down")
    created = await client.post("/api/auth/register", json=account.registration())
    assert created.status_code == 201, created.text
    # a password change: it stands, without its notice
    change = {"current_password": DEFAULT_PASSWORD, "new_password": "changed while ses is down"}
    changed = await client.post("/api/users/me/password", json=change, headers=user_headers)
    assert changed.status_code == 204, changed.text

    assert sent_through_moto_ses(REGION) == []
    reasons = [
        r.fields["reason"]  # type: ignore[attr-defined]
        for r in every_log_line.records
        if r.getMessage() == "account email not sent"
    ]
    assert len(reasons) == 3 and all("MessageRejected" in reason for reason in reasons)
    failures = [line for line in emf_lines if metrics.MAIL_FAILURES in line]
    assert len(failures) == 3


async def test_a_resend_that_ses_refuses_is_a_503(
    client: httpx.AsyncClient, deployed_stage: None, user_headers: dict[str, str]
) -> None:
    response = await client.post("/api/users/me/verify-email", headers=user_headers)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "mail_unavailable"


@pytest.fixture
def stage_without_mail(monkeypatch: pytest.MonkeyPatch, app_in_service: None) -> Iterator[None]:
    """Deployed without `-c email_from`: no backend at all."""
    monkeypatch.setenv("ENVIRONMENT", "dev")
    for name in ("EMAIL_BACKEND", "EMAIL_FROM", "FRONTEND_URL"):
        monkeypatch.delenv(name, raising=False)
    _settle()
    yield
    monkeypatch.undo()
    _settle()


async def test_without_mail_recovery_is_a_503_for_every_address_and_registration_works(
    client: httpx.AsyncClient, user: User, stage_without_mail: None
) -> None:
    for address in (user.email, "no-account-here@example.com"):
        response = await client.post("/api/auth/password-recovery", json={"email": address})
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "mail_unavailable"

    account = Credentials.new("no_mail")
    created = await client.post("/api/auth/register", json=account.registration())
    assert created.status_code == 201, created.text
    assert created.json()["email_verified"] is False


@pytest.fixture
def recovery_pad(monkeypatch: pytest.MonkeyPatch, verified_sender: None) -> float:
    """PASSWORD_RECOVERY_MIN_SECONDS as deployed (the tests' settings turn it off)."""
    seconds = 0.3
    monkeypatch.setenv("PASSWORD_RECOVERY_MIN_SECONDS", str(seconds))
    get_settings.cache_clear()
    return seconds


@contextlib.contextmanager
def ses_hooked(**handlers: Callable[..., Any]) -> Iterator[None]:
    """botocore event handlers (`before_call`, `before_send`) for SESv2 SendEmail, on the
    default session the app's clients are made from (moto gives each test a new one),
    ahead of moto's own."""
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    events = boto3.DEFAULT_SESSION.events
    names = {f"{name.replace('_', '-')}.sesv2.SendEmail": h for name, h in handlers.items()}
    for name, handler in names.items():
        events.register_first(name, handler)
    try:
        yield
    finally:
        for name, handler in names.items():
            events.unregister(name, handler)


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self._body


async def test_a_recovery_answers_at_its_pad_whatever_ses_does_and_as_for_no_account(
    client: httpx.AsyncClient,
    user: User,
    recovery_pad: float,
    every_log_line: pytest.LogCaptureFixture,
) -> None:
    # given: an SES that holds the first attempt until the test lets go, then throttles
    # (as an attacker's own requests can make it): before, its retries and timeouts
    # (seconds each) made an account's answer later than any other address's
    configs: list[Any] = []  # the client's config, for each call
    attempts: list[str] = []  # each request sent, retries included
    let_go, answered = threading.Event(), threading.Event()

    def note_config(context: dict[str, Any], **_: object) -> None:
        configs.append(context["client_config"])

    def hang_then_throttle(request: Any, **_: object) -> AWSResponse:
        attempts.append(request.url)
        if len(attempts) == 1:
            let_go.wait(WITHIN_SECONDS)  # a bound against hanging, not a speed target
        answered.set()
        body = json.dumps({"message": "Maximum sending rate exceeded."}).encode()
        headers = {"x-amzn-ErrorType": "TooManyRequestsException"}
        return AWSResponse(request.url, 429, headers, _Body(body))

    # when
    try:
        with ses_hooked(before_call=note_config, before_send=hang_then_throttle):
            for_account = await client.post(RECOVERY, json={"email": user.email})
            # then: it answered while SES still hadn't
            assert not answered.is_set()
            let_go.set()
            await wait_until(answered.is_set, lambda: "SES was never let go")
    finally:
        let_go.set()
    no_account = await client.post(RECOVERY, json={"email": "nobody-here@example.com"})

    # then: tried once (no retry after the throttling either), with timeouts inside the pad
    assert len(attempts) == 1
    (config,) = configs
    assert config.retries["total_max_attempts"] == 1
    assert 0 < config.connect_timeout <= recovery_pad and 0 < config.read_timeout <= recovery_pad
    # the same answer as an address without an account
    assert for_account.status_code == no_account.status_code == 202
    assert for_account.json() == no_account.json() == {"message": RECOVERY_ACCEPTED}
    # and a warning naming the recipient's domain, never the address
    (line,) = [
        r for r in every_log_line.records if r.getMessage() == "account email not sent in time"
    ]
    assert line.levelno == logging.WARNING
    assert line.fields["to_domain"] == user.email.rpartition("@")[2]  # type: ignore[attr-defined]
    assert user.email not in _as_written(every_log_line)
