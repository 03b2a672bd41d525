"""What the app refuses in a string, the schema's `pattern` declares: NUL, and emails on
special-use domains. Clients and generators (schemathesis) then know before sending."""

import re
import uuid
from typing import Any

import email_validator
import httpx
import pytest

from lambda_app.core.types import SPECIAL_USE_DOMAINS
from tests.fixtures.accounts import DEFAULT_PASSWORD

REQUEST_BODIES = ("UserCreate", "UserUpdateMe", "UserUpdateAdmin", "PasswordChange")


def _string_fields(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each string property of the request bodies (or the string branch of an `X | None`)."""
    fields = {}
    for body in REQUEST_BODIES:
        for name, prop in schema["components"]["schemas"][body]["properties"].items():
            for branch in prop.get("anyOf", [prop]):
                if branch.get("type") == "string":
                    fields[f"{body}.{name}"] = branch
    return fields


@pytest.fixture
async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    return dict((await client.get("/api/openapi.json")).json())


async def test_every_request_string_declares_that_nul_is_refused(
    openapi: dict[str, Any],
) -> None:
    fields = _string_fields(openapi)
    assert "UserCreate.first_name" in fields and "PasswordChange.current_password" in fields
    for name, field in fields.items():
        assert "pattern" in field, name
        assert re.search(field["pattern"], "ab\x00cd") is None, name
        assert re.search(field["pattern"], "abcd") is not None, name


def test_the_special_use_domains_are_email_validators() -> None:
    assert set(SPECIAL_USE_DOMAINS) == set(email_validator.SPECIAL_USE_DOMAIN_NAMES)


@pytest.mark.parametrize("domain", [*SPECIAL_USE_DOMAINS, "TEST", "sub.Local"])
async def test_an_email_on_a_special_use_domain_is_declared_and_refused(
    client: httpx.AsyncClient, openapi: dict[str, Any], domain: str
) -> None:
    # given an address the schema's pattern refuses
    pattern = _string_fields(openapi)["UserCreate.email"]["pattern"]
    email = f"someone@mail.{domain}"
    assert re.search(pattern, email) is None
    assert re.search(pattern, "someone@mail.example") is not None

    # when it is sent anyway, then the app refuses it too
    name = f"su_{uuid.uuid4().hex[:10]}"
    response = await client.post(
        "/api/auth/register",
        json={"username": name, "email": email, "password": DEFAULT_PASSWORD},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["loc"] == ["body", "email"]


@pytest.mark.parametrize("email", ["zoë@example.com", "名前@example.com", '"zoë@x"@example.com'])
async def test_an_email_no_mail_can_reach_is_declared_and_refused(
    client: httpx.AsyncClient, openapi: dict[str, Any], user_headers: dict[str, str], email: str
) -> None:
    # given an address beyond ASCII before its `@`, which only SMTPUTF8 mail carries
    pattern = _string_fields(openapi)["UserCreate.email"]["pattern"]
    assert re.search(pattern, email) is None
    assert re.search(pattern, "zoe@exämple.com") is not None  # a domain beyond ASCII is fine

    # when it is sent anyway, at registration or as a new address, then the app refuses it
    name = f"u8_{uuid.uuid4().hex[:10]}"
    registered = await client.post(
        "/api/auth/register",
        json={"username": name, "email": email, "password": DEFAULT_PASSWORD},
    )
    changed = await client.patch("/api/users/me", json={"email": email}, headers=user_headers)
    for response in (registered, changed):
        assert response.status_code == 422, response.text
        assert ["body", "email"] in [d["loc"] for d in response.json()["error"]["details"]]
