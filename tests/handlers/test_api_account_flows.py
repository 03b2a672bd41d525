"""The account flows through the real Lambda entry point, with API Gateway events and rows
that commit: verify an address, lose the password, reset it, refresh and log out."""

from __future__ import annotations

from tests.fixtures.accounts import register_and_login_via_handler
from tests.fixtures.lambda_events import Handler, http_api_event, invoke
from tests.fixtures.mailbox import Mailbox

NEW_PASSWORD = "chosen after a reset"


def test_verification_reset_and_sessions_through_the_handler(api_handler: Handler) -> None:
    mailbox = Mailbox()
    account = register_and_login_via_handler(api_handler, prefix="flows")
    email = f"{account.username}@example.com"

    # the registration's link verifies the address
    verify = mailbox.last_to(email, "Verify your email address")
    verified = invoke(
        api_handler, http_api_event("POST", "/api/auth/verify-email", json={"token": verify.token})
    )
    assert verified.status == 204, verified.body
    me = invoke(api_handler, http_api_event("GET", "/api/users/me", token=account.token))
    assert me.json()["email_verified"] is True

    # a login with a refresh token, then the password is forgotten and reset
    form = {"username": account.username, "password": account.password}
    issued = invoke(api_handler, http_api_event("POST", "/api/auth/token", form=form)).json()
    asked = invoke(
        api_handler, http_api_event("POST", "/api/auth/password-recovery", json={"email": email})
    )
    assert asked.status == 202, asked.body
    reset_link = mailbox.last_to(email, "Reset your password")
    body = {"token": reset_link.token, "new_password": NEW_PASSWORD}
    reset = invoke(api_handler, http_api_event("POST", "/api/auth/reset-password", json=body))
    assert reset.status == 204, reset.body

    # everything issued before is dead; the new password starts a new session
    for event in (
        http_api_event("GET", "/api/users/me", token=issued["access_token"]),
        http_api_event(
            "POST", "/api/auth/refresh", json={"refresh_token": issued["refresh_token"]}
        ),
    ):
        assert invoke(api_handler, event).status == 401
    replay = invoke(api_handler, http_api_event("POST", "/api/auth/reset-password", json=body))
    assert replay.status == 400 and replay.json()["error"]["code"] == "invalid_reset_token"
    fresh = invoke(
        api_handler,
        http_api_event("POST", "/api/auth/token", form={**form, "password": NEW_PASSWORD}),
    )
    assert fresh.status == 200, fresh.body
    refreshed = invoke(
        api_handler,
        http_api_event(
            "POST", "/api/auth/refresh", json={"refresh_token": fresh.json()["refresh_token"]}
        ),
    )
    assert refreshed.status == 200, refreshed.body
    logout = {"refresh_token": refreshed.json()["refresh_token"]}
    assert (
        invoke(api_handler, http_api_event("POST", "/api/auth/logout", json=logout)).status == 204
    )
    assert (
        invoke(api_handler, http_api_event("POST", "/api/auth/refresh", json=logout)).status == 401
    )
