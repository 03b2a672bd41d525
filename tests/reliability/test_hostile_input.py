"""Hostile input: every answer is a 4xx in the standard error shape, never a 5xx, and
whatever is accepted is stored exactly as sent."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.core.settings import get_settings
from lambda_app.main import MAX_ERROR_DETAILS
from lambda_app.models import User
from tests.fixtures.accounts import DEFAULT_PASSWORD

STRING_FIELDS = ("username", "email", "password", "first_name", "last_name")
INT4_MAX = 2**31 - 1


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["message"], str)
    if code is not None:
        assert body["error"]["code"] == code, body
    return body


def new_user(**overrides: Any) -> dict[str, Any]:
    name = f"h_{uuid.uuid4().hex[:10]}"
    return {
        "username": name,
        "email": f"{name}@example.com",
        "password": DEFAULT_PASSWORD,
        "first_name": "First",
        "last_name": "Last",
        **overrides,
    }


async def register(client: httpx.AsyncClient, **overrides: Any) -> httpx.Response:
    return await client.post("/api/auth/register", json=new_user(**overrides))


async def user_count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(User)) or 0)


# --- oversized bodies -------------------------------------------------------------------


async def test_an_oversized_body_is_413(
    client: httpx.AsyncClient, user_headers: dict[str, str], session: AsyncSession
) -> None:
    limit = get_settings().max_request_body_bytes
    before = await user_count(session)
    huge = json.dumps(new_user(first_name="x" * (limit + 1))).encode()
    cases = [
        ("POST", "/api/auth/register", {"content-type": "application/json"}, huge),
        ("PATCH", "/api/users/me", {"content-type": "application/json", **user_headers}, huge),
        (
            "POST",
            "/api/auth/token",
            {"content-type": "application/x-www-form-urlencoded"},
            b"username=a&password=" + b"x" * limit,
        ),
        ("POST", "/api/auth/register", {"content-type": "text/plain"}, b"\x00" * (limit * 4)),
    ]
    for method, path, headers, body in cases:
        response = await client.request(method, path, headers=headers, content=body)
        assert_error(response, 413, "payload_too_large")
    assert await user_count(session) == before


async def test_an_oversized_body_without_content_length_is_413(client: httpx.AsyncClient) -> None:
    limit = get_settings().max_request_body_bytes

    async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length to trust
        for _ in range(limit // 1024 + 2):
            yield b" " * 1024

    response = await client.post(
        "/api/auth/register", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


async def test_a_body_just_within_the_limit_is_read_and_validated(
    client: httpx.AsyncClient,
) -> None:
    limit = get_settings().max_request_body_bytes
    body = json.dumps(new_user(first_name="")).encode()
    padded = body[:-1] + b" " * (limit - len(body)) + b"}"
    assert len(padded) == limit
    response = await client.post(
        "/api/auth/register", content=padded, headers={"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text


async def test_a_body_of_unknown_keys_gets_a_short_422(client: httpx.AsyncClient) -> None:
    # One error per unknown key: listed in full, a 64 kB body would get a 0.8 MB answer.
    limit = get_settings().max_request_body_bytes
    body = json.dumps(new_user()).encode()[:-1]  # without its closing brace
    unknown = 0
    while len(body) + len(key := f', "k{unknown}": 0'.encode()) < limit:
        body += key
        unknown += 1
    body += b"}"
    assert limit - 20 < len(body) <= limit

    response = await client.post(
        "/api/auth/register", content=body, headers={"content-type": "application/json"}
    )

    details = assert_error(response, 422, "validation_error")["error"]["details"]
    assert len(details) == MAX_ERROR_DETAILS + 1
    assert all(d["type"] == "extra_forbidden" for d in details[:-1])
    unlisted = unknown - MAX_ERROR_DETAILS
    assert details[-1] == {"loc": [], "message": f"{unlisted} more not listed", "type": "truncated"}
    assert len(response.content) < 4096


# --- invalid JSON, wrong content types, duplicate keys ------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b'{"username": "a",}',
        b"{'username': 'a'}",
        b'{"username": "a"} trailing',
        b"\xff\xfe\x00{",
        b'{"username": "a"',
        b"[1, 2",
        b'{"a": 1}{"b": 2}',
        b'"unterminated',
        b'{"username": "a" "email": "b"}',
        b'{"username": "\xc3\x28"}',
    ],
)
async def test_invalid_json_is_422_invalid_json(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(
        "/api/auth/register", content=body, headers={"content-type": "application/json"}
    )
    assert_error(response, 422, "invalid_json")


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 3000 + b"]" * 3000,  # 6 kB of valid JSON, deeper than the parser recurses
        b"[" * 30000,
        b'{"a":' * 3000 + b"1" + b"}" * 3000,
    ],
)
@pytest.mark.parametrize("path", ["/api/auth/register", "/api/auth/refresh"])
async def test_json_nested_too_deeply_is_422_invalid_json(
    client: httpx.AsyncClient, session: AsyncSession, path: str, body: bytes
) -> None:
    before = await user_count(session)
    response = await client.post(path, content=body, headers={"content-type": "application/json"})
    body_ = assert_error(response, 422, "invalid_json")
    assert body_["error"]["details"][0]["message"] == "nested too deeply"
    assert await user_count(session) == before


@pytest.mark.parametrize(
    ("body", "secret"),
    [
        (b'{"username": "u", "password": "pass\xffword"}', ["0xff", "\\xff"]),
        (b'{"username": "u", "password": "pass\\udbffword"}', ["udbff", "\udbff"]),
    ],
)
async def test_invalid_json_reasons_never_quote_the_body(
    client: httpx.AsyncClient, body: bytes, secret: list[str]
) -> None:
    """The codec's own messages name the offending byte or character: the reason must not."""
    response = await client.post(
        "/api/auth/register", content=body, headers={"content-type": "application/json"}
    )
    reason = assert_error(response, 422, "invalid_json")["error"]["details"][0]["message"]
    assert reason and not any(fragment.lower() in reason.lower() for fragment in secret), reason


@pytest.mark.parametrize(
    "body",
    [
        b"null",
        b"[]",
        b"42",
        b'"a string"',
        b"NaN",
        b'{"username": NaN}',
        b"{}",
        b"",
        b"\xef\xbb\xbf{}",
        b'{"username": 1e999}',
    ],
)
async def test_json_of_the_wrong_shape_is_422(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(
        "/api/auth/register", content=body, headers={"content-type": "application/json"}
    )
    assert_error(response, 422)


@pytest.mark.parametrize("field", STRING_FIELDS)
async def test_lone_surrogates_in_any_field_are_422_invalid_json(
    client: httpx.AsyncClient, user_headers: dict[str, str], session: AsyncSession, field: str
) -> None:
    """`"\\ud800"` is valid JSON syntax, but no text: it can be neither hashed nor stored."""
    before = await user_count(session)
    body = json.dumps({**new_user(), field: "PLACEHOLDER"}).replace("PLACEHOLDER", "ab\\ud800cd")
    response = await client.post(
        "/api/auth/register", content=body, headers={"content-type": "application/json"}
    )
    assert_error(response, 422, "invalid_json")
    assert await user_count(session) == before
    if field != "password":
        response = await client.patch(
            "/api/users/me",
            content=f'{{"{field}": "\\udfff"}}',
            headers={"content-type": "application/json", **user_headers},
        )
        assert_error(response, 422, "invalid_json")


async def test_duplicate_keys_are_422_and_change_nothing(
    client: httpx.AsyncClient, user_headers: dict[str, str], session: AsyncSession
) -> None:
    before = await user_count(session)
    user = new_user()
    duplicated = json.dumps(user)[:-1] + f', "username": "{user["username"]}_2"}}'
    response = await client.post(
        "/api/auth/register", content=duplicated, headers={"content-type": "application/json"}
    )
    body = assert_error(response, 422, "invalid_json")
    assert "duplicate" in body["error"]["details"][0]["message"]
    assert await user_count(session) == before

    me_before = (await client.get("/api/users/me", headers=user_headers)).json()
    response = await client.patch(
        "/api/users/me",
        content=b'{"first_name": "A", "last_name": "B", "first_name": "C"}',
        headers={"content-type": "application/json", **user_headers},
    )
    assert_error(response, 422, "invalid_json")
    assert (await client.get("/api/users/me", headers=user_headers)).json() == me_before


async def test_keys_differing_only_in_case_are_unknown_fields(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/auth/register", json={**new_user(), "Username": "other_name", "is_superuser": True}
    )
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        "multipart/form-data; boundary=xyz",
        "application/octet-stream",
        None,
    ],
)
async def test_register_with_a_wrong_content_type_is_415_naming_json(
    client: httpx.AsyncClient, session: AsyncSession, content_type: str | None
) -> None:
    before = await user_count(session)
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post(
        "/api/auth/register", content=json.dumps(new_user()).encode(), headers=headers
    )
    # JSON is only read as JSON when it says so (curl's -d alone sends a form)
    body = assert_error(response, 415, "unsupported_media_type")
    assert body["error"]["message"] == "Send the body as application/json"
    assert await user_count(session) == before


async def test_register_with_no_body_at_all_is_still_422(client: httpx.AsyncClient) -> None:
    assert_error(await client.post("/api/auth/register"), 422, "validation_error")


async def test_token_with_json_instead_of_a_form_is_415_naming_the_form(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/auth/token", json={"username": "someone", "password": DEFAULT_PASSWORD}
    )
    body = assert_error(response, 415, "unsupported_media_type")
    assert body["error"]["message"] == "Send the body as application/x-www-form-urlencoded"


async def test_token_with_a_form_body_but_no_content_type_is_415_naming_the_form(
    client: httpx.AsyncClient, user: User
) -> None:
    response = await client.post(
        "/api/auth/token", content=f"username={user.username}&password={DEFAULT_PASSWORD}"
    )
    assert "content-type" not in response.request.headers
    body = assert_error(response, 415, "unsupported_media_type")
    assert body["error"]["message"] == "Send the body as application/x-www-form-urlencoded"


async def test_token_with_no_body_and_no_content_type_is_422_naming_the_fields(
    client: httpx.AsyncClient,
) -> None:
    body = assert_error(await client.post("/api/auth/token"), 422, "validation_error")
    assert {tuple(d["loc"]) for d in body["error"]["details"]} >= {
        ("body", "username"),
        ("body", "password"),
    }


async def test_token_with_a_multipart_form_is_read_like_a_form(
    client: httpx.AsyncClient, user: User
) -> None:
    response = await client.post(
        "/api/auth/token",
        files={"username": (None, user.username), "password": (None, DEFAULT_PASSWORD)},
    )
    assert response.status_code == 200, response.text


# --- unicode, emoji and NUL in every string field -------------------------------------------


@pytest.mark.parametrize("field", STRING_FIELDS)
async def test_nul_in_any_register_field_is_422(
    client: httpx.AsyncClient, session: AsyncSession, field: str
) -> None:
    before = await user_count(session)
    value = new_user()[field]
    response = await register(client, **{field: value[:2] + "\x00" + value[2:]})
    body = assert_error(response, 422, "validation_error")
    assert any(field in detail["loc"] for detail in body["error"]["details"])
    assert "\x00" not in response.text  # the offending input is not echoed back
    assert await user_count(session) == before


@pytest.mark.parametrize("field", ["username", "email", "first_name", "last_name"])
async def test_nul_in_any_profile_field_is_422(
    client: httpx.AsyncClient, user_headers: dict[str, str], field: str
) -> None:
    response = await client.patch("/api/users/me", json={field: "ab\x00cd"}, headers=user_headers)
    assert_error(response, 422, "validation_error")


async def test_nul_in_password_change_and_login_never_500(
    client: httpx.AsyncClient, user: User, user_headers: dict[str, str]
) -> None:
    for payload in (
        {"current_password": "a\x00b", "new_password": "new password 1"},
        {"current_password": DEFAULT_PASSWORD, "new_password": "new\x00password"},
    ):
        response = await client.post("/api/users/me/password", json=payload, headers=user_headers)
        assert_error(response, 422, "validation_error")
    for form in (
        {"username": f"{user.username}\x00", "password": DEFAULT_PASSWORD},
        {"username": user.username, "password": f"{DEFAULT_PASSWORD}\x00"},
        {"username": "\x00", "password": "\x00"},
    ):
        response = await client.post("/api/auth/token", data=form)
        assert_error(response, 401, "invalid_credentials")


UNICODE_NAMES = [
    "Zoë Ångström-Łukasiewicz",
    "🚀👩🏽‍🚀🏳️‍🌈 emoji ZWJ sequences",
    "עברית ومرحبا RTL",
    "e\u0301 combining, \u200b zero width, \ufeff BOM",
    "日本語の名前",
    "𝕌𝕟𝕚𝕔𝕠𝕕𝕖 outside the BMP 𐍈",  # noqa: RUF001 - look-alike letters on purpose
]


@pytest.mark.parametrize("name", UNICODE_NAMES)
async def test_unicode_names_and_passwords_round_trip(
    client: httpx.AsyncClient, session: AsyncSession, name: str
) -> None:
    password = f"pä55 {name}"[:256]
    response = await register(client, first_name=name, last_name=name[::-1], password=password)
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["first_name"], created["last_name"]) == (name, name[::-1])
    stored = await session.get(User, created["id"])
    assert stored is not None and stored.first_name == name
    # the same unicode password logs in (no normalisation surprise between hash and verify)
    token = await client.post(
        "/api/auth/token", data={"username": created["username"], "password": password}
    )
    assert token.status_code == 200, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    patched = await client.patch("/api/users/me", json={"last_name": name}, headers=headers)
    assert patched.status_code == 200 and patched.json()["last_name"] == name


@pytest.mark.parametrize("username", ["zoë", "user🚀", "名前名前", "a b c", "a'b", "ＡＢＣ"])  # noqa: RUF001
async def test_usernames_outside_the_allowed_alphabet_are_422(
    client: httpx.AsyncClient, user_headers: dict[str, str], username: str
) -> None:
    assert_error(await register(client, username=username), 422, "validation_error")
    response = await client.patch(
        "/api/users/me", json={"username": username}, headers=user_headers
    )
    assert_error(response, 422, "validation_error")


async def test_internationalised_emails_are_stored_as_normalised(
    client: httpx.AsyncClient,
) -> None:
    response = await register(client, email="JURGEN.Massig@Bücher.example")
    assert response.status_code == 201, response.text
    email = response.json()["email"]
    assert email == email.lower() and "bücher.example" in email
    # a local part beyond ASCII too: no mail without SMTPUTF8 reaches it (docs/api.md)
    bad_ones = ("JÜRGEN.Mäßig@Bücher.example", "🚀@🚀", "no-at-sign", "a@b@c.example")
    for bad in (*bad_ones, "a@-bad-.example", "a@.example"):
        assert_error(await register(client, email=bad), 422, "validation_error")


# --- strings at and beyond the column limits ------------------------------------------------

EMAIL_AT_LIMIT = f"{'a' * 64}@{'b' * 63}.{'c' * 63}.{'d' * 57}.com"
assert len(EMAIL_AT_LIMIT) == 254


@pytest.mark.parametrize(
    ("field", "at_limit", "beyond"),
    [
        ("username", "u" * 32, "u" * 33),
        ("email", EMAIL_AT_LIMIT, "a" + EMAIL_AT_LIMIT),
        ("first_name", "f" * 100, "f" * 101),
        ("last_name", "🚀" * 100, "🚀" * 101),  # limits count characters, not bytes
        ("password", "p" * 256, "p" * 257),
    ],
)
async def test_strings_at_the_column_limit_are_stored_and_beyond_it_are_422(
    client: httpx.AsyncClient, session: AsyncSession, field: str, at_limit: str, beyond: str
) -> None:
    before = await user_count(session)
    assert_error(await register(client, **{field: beyond}), 422, "validation_error")
    assert await user_count(session) == before

    response = await register(client, **{field: at_limit})
    assert response.status_code == 201, response.text
    if field != "password":
        assert response.json()[field] == at_limit
    else:
        login = await client.post(
            "/api/auth/token", data={"username": response.json()["username"], "password": at_limit}
        )
        assert login.status_code == 200


@pytest.mark.parametrize(
    ("password", "status"),
    [
        ("e\u0301" * 4, 422),  # 8 code points as sent, 4 letters é once normalized
        ("e\u0301" * 8, 201),  # 8 normalized
        ("\ufb00" * 129, 422),  # the ligature ﬀ is "ff" in NFKC: 258 hashed
        ("\ufb00" * 128, 201),  # 256 hashed
    ],
)
async def test_password_limits_count_what_is_hashed(
    client: httpx.AsyncClient, password: str, status: int
) -> None:
    # The password is hashed NFKC-normalized (NIST SP 800-63B), so that is what is measured.
    response = await register(client, password=password)
    assert response.status_code == status, response.text


async def test_token_field_limits(client: httpx.AsyncClient) -> None:
    at_limit = await client.post(
        "/api/auth/token", data={"username": "u" * 320, "password": "p" * 256}
    )
    assert_error(at_limit, 401, "invalid_credentials")
    for form in (
        {"username": "u" * 321, "password": "p"},
        {"username": "u", "password": "p" * 257},
    ):
        assert_error(await client.post("/api/auth/token", data=form), 422, "validation_error")


# --- negative, zero and huge ids and limits -------------------------------------------------


@pytest.mark.parametrize(
    "user_id",
    [
        "0",
        "-1",
        str(INT4_MAX + 1),
        str(10**30),
        "1e3",
        "1.5",
        "0x10",
        "abc",
        "%F0%9F%9A%80",
        "%00",
        "1%20OR%201=1",
        # what int() reads but no id is spelt as: one spelling per id (`1_0` was read as 10)
        "+1",
        "%2B1",
        "%201",
        "1%20",
        "1_0",
        "01",
        "%D9%A1",  # ARABIC-INDIC DIGIT ONE, which `\d` would take for a 1
    ],
)
async def test_out_of_range_or_malformed_ids_are_422(
    client: httpx.AsyncClient, superuser_headers: dict[str, str], user_id: str
) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        kwargs: dict[str, Any] = {"json": {"first_name": "X"}} if method == "PATCH" else {}
        response = await client.request(
            method, f"/api/users/{user_id}", headers=superuser_headers, **kwargs
        )
        assert_error(response, 422, "validation_error")


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "-1"},
        {"limit": "101"},
        {"limit": str(10**20)},
        {"limit": "1\x00"},
        {"limit": "1;DROP TABLE users"},
        {"cursor": "-1"},
        {"cursor": str(INT4_MAX + 1)},
        {"cursor": str(-(10**30))},
        {"limit": "ten"},
        {"limit": ""},
        # one spelling per number, as for ids: these all read as a page int() could parse
        {"limit": "+5"},
        {"limit": "05"},
        {"limit": " 5"},
        {"cursor": "+1"},
        {"cursor": "1_0"},
        {"cursor": "00"},
        {"cursor": "\u0661"},  # ARABIC-INDIC DIGIT ONE
    ],
)
async def test_out_of_range_or_malformed_paging_is_422(
    client: httpx.AsyncClient, superuser_headers: dict[str, str], query: dict[str, str]
) -> None:
    response = await client.get("/api/users", params=query, headers=superuser_headers)
    assert_error(response, 422, "validation_error")


async def test_paging_at_the_edges(
    client: httpx.AsyncClient, superuser_headers: dict[str, str]
) -> None:
    for query in ({"limit": "1"}, {"limit": "100"}, {"cursor": "0"}):
        assert (
            await client.get("/api/users", params=query, headers=superuser_headers)
        ).status_code == 200
    last = await client.get(
        "/api/users", params={"cursor": str(INT4_MAX)}, headers=superuser_headers
    )
    assert last.status_code == 200
    assert last.json() == {"items": [], "next_cursor": None}


# --- SQL-looking input --------------------------------------------------------------------

SQL_LOOKING = [
    "Robert'); DROP TABLE users;--",
    "' OR '1'='1",
    "admin'--",
    "1; DELETE FROM users WHERE 1=1",
    '"; TRUNCATE login_throttle; --',
    "$$; SELECT pg_sleep(10); $$",
    "%' UNION SELECT hashed_password FROM users --",
]


async def test_sql_looking_input_is_data_and_the_tables_are_intact(
    client: httpx.AsyncClient, session: AsyncSession, superuser_headers: dict[str, str]
) -> None:
    before = await user_count(session)
    created = 0
    for attack in SQL_LOOKING:
        # as a username: not in the allowed alphabet
        assert_error(await register(client, username=attack[:32]), 422, "validation_error")
        # as names: stored verbatim
        response = await register(client, first_name=attack, last_name=attack[::-1])
        assert response.status_code == 201, response.text
        assert response.json()["first_name"] == attack
        created += 1
        # as login names and passwords: just wrong credentials
        for form in (
            {"username": attack, "password": attack},
            {"username": "' OR 1=1 --", "password": "' OR ''='"},
        ):
            response = await client.post("/api/auth/token", data=form)
            assert_error(response, 401, "invalid_credentials")
        # in the query string and the path
        response = await client.get(
            "/api/users", params={"limit": attack}, headers=superuser_headers
        )
        assert_error(response, 422, "validation_error")
    # as an email local part (quotes and apostrophes are legal there)
    response = await register(client, email="o'brien+'--@example.com")
    assert response.status_code == 201, response.text
    assert response.json()["email"] == "o'brien+'--@example.com"
    created += 1

    # then: both tables are there and hold exactly what was written
    assert await user_count(session) == before + created
    for table in ("users", "login_throttle", "alembic_version"):
        assert await session.scalar(text(f"SELECT to_regclass('{table}') IS NOT NULL"))
    stored = set(await session.scalars(select(User.first_name)))
    assert set(SQL_LOOKING) <= stored


# --- account-email tokens and addresses ---------------------------------------------------

HOSTILE_TOKENS = [
    "a\x00b",  # NUL: no PostgreSQL text holds it
    "' OR '1'='1",
    "x'; DROP TABLE account_tokens; --",
    "🚀" * 30,  # 30 characters, 120 bytes of UTF-8
    "\u202e\u200b\ufeff",
    " " * 43,
    "%00%27",
]


@pytest.mark.parametrize("token", HOSTILE_TOKENS)
async def test_hostile_tokens_are_a_400_or_422_and_change_nothing(
    client: httpx.AsyncClient, session: AsyncSession, token: str
) -> None:
    for path, body in (
        ("/api/auth/reset-password", {"token": token, "new_password": "a long new password"}),
        ("/api/auth/verify-email", {"token": token}),
        ("/api/auth/refresh", {"refresh_token": token}),
        ("/api/auth/logout", {"refresh_token": token}),
    ):
        response = await client.post(path, json=body)
        if path.endswith("/logout"):  # 204 whatever the token: nothing to end
            assert response.status_code in (204, 422), response.text
        else:  # never a success: no hostile token resets, verifies or refreshes anything
            assert response.status_code in (400, 401, 422), (path, response.text)
            assert_error(response, response.status_code)
    tables = await session.scalar(
        text("SELECT count(*) FROM pg_tables WHERE tablename IN ('account_tokens', 'users')")
    )
    assert tables == 2


@pytest.mark.parametrize(
    "email",
    ["a\x00@example.com", "a@b@example.com", "' OR 1=1 --@example.com", "é" * 300, "", 42, None],
)
async def test_hostile_recovery_addresses_are_a_422(
    client: httpx.AsyncClient, email: object
) -> None:
    response = await client.post("/api/auth/password-recovery", json={"email": email})
    assert_error(response, 422, "validation_error")


async def test_a_nul_in_the_new_password_of_a_reset_is_a_422(client: httpx.AsyncClient) -> None:
    body = {"token": "t" * 43, "new_password": "new\x00password"}
    response = await client.post("/api/auth/reset-password", json=body)
    assert_error(response, 422, "validation_error")
