"""CORS_ALLOWED_ORIGINS: what the setting accepts, and what a browser on another origin sees."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.core.cors import ALLOWED_METHODS, CorsMiddleware
from lambda_app.core.settings import ApiSettings, SettingsError, load_settings
from lambda_app.main import create_app
from tests.fixtures.settings import api_settings

APP_ORIGIN = "https://app.example.com"
DEV_ORIGIN = "http://localhost:5173"
OTHER_ORIGIN = "https://evil.example.net"
STRONG_SECRET = "x" * 48


def _cors_app(*origins: str, **values: object) -> FastAPI:
    return create_app(api_settings(cors_allowed_origins=origins, **values))


@pytest.fixture
async def cors_client(session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    """The app allowing APP_ORIGIN and DEV_ORIGIN (its requests join the test's transaction)."""
    transport = httpx.ASGITransport(app=_cors_app(APP_ORIGIN, DEV_ORIGIN))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def _preflight(origin: str, method: str = "POST", headers: str = "content-type") -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": method,
        "access-control-request-headers": headers,
    }


# --- the setting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ()),
        (" , ", ()),
        ("https://app.example.com", ("https://app.example.com",)),
        (
            "https://app.example.com, http://localhost:5173,",
            ("https://app.example.com", "http://localhost:5173"),
        ),
        # written as a browser sends Origin: lower case, no default port, no trailing slash
        ("HTTPS://App.Example.com:443/", ("https://app.example.com",)),
        (
            "http://127.0.0.1:80,http://127.0.0.1:8080",
            ("http://127.0.0.1", "http://127.0.0.1:8080"),
        ),
        ("http://[0:0::1]:3000", ("http://[::1]:3000",)),
        ("https://a.example,https://A.example", ("https://a.example",)),
    ],
)
def test_origins_are_read_comma_separated_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: tuple[str, ...]
) -> None:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", raw)
    assert load_settings(ApiSettings, _env_file=None).cors_allowed_origins == expected


def test_no_origins_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CORS_ALLOWED_ORIGINS", raising=False)
    assert load_settings(ApiSettings, _env_file=None).cors_allowed_origins == ()


def test_any_origin_is_accepted_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "*")
    assert load_settings(ApiSettings, environment="local", _env_file=None).cors_allowed_origins == (
        "*",
    )


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_any_origin_is_refused_outside_local(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "*")
    with pytest.raises(SettingsError) as refused:
        load_settings(
            ApiSettings, environment=environment, jwt_secret=STRONG_SECRET, _env_file=None
        )
    assert [p.variable for p in refused.value.problems] == ["CORS_ALLOWED_ORIGINS"]
    assert "local" in str(refused.value)


@pytest.mark.parametrize(
    "raw",
    [
        "app.example.com",  # no scheme
        "https://app.example.com/path",
        "https://app.example.com?x=1",
        "https://app.example.com#top",
        "https://user:pw@app.example.com",
        "ftp://app.example.com",
        "https://app.example.com:99999",
        "https://app.example.com:",
        "https://*.example.com",  # no wildcards inside an origin
        "https://app_example.com",
        "https://bücher.example",  # punycode, as the browser sends it
        "https://app.example.com,*",  # `*` only alone
        "https://app.example.com,null",
    ],
)
def test_bad_origins_are_refused_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", raw)
    with pytest.raises(SettingsError) as refused:
        load_settings(ApiSettings, _env_file=None)
    assert [p.variable for p in refused.value.problems] == ["CORS_ALLOWED_ORIGINS"]
    for part in raw.split(","):
        assert part not in str(refused.value) or part == "*"


def test_the_allowed_methods_cover_every_route() -> None:
    app = create_app(api_settings())
    used = {m for r in app.routes if isinstance(r, APIRoute) for m in r.methods or ()} - {"HEAD"}
    assert used <= set(ALLOWED_METHODS)


# --- off by default -------------------------------------------------------------------------


async def test_without_origins_nothing_is_installed_and_no_header_is_sent() -> None:
    app = create_app(api_settings(cors_allowed_origins=()))
    installed = [getattr(m.cls, "__name__", "") for m in app.user_middleware]
    assert CorsMiddleware.__name__ not in installed
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        response = await client.get("/api/health", headers={"origin": APP_ORIGIN})
        preflight = await client.options("/api/auth/register", headers=_preflight(APP_ORIGIN))
    for answer in (response, preflight):
        assert not [h for h in answer.headers if h.startswith("access-control-")]
    assert preflight.status_code == 405


# --- preflights -----------------------------------------------------------------------------


@pytest.mark.parametrize("origin", [APP_ORIGIN, DEV_ORIGIN])
async def test_a_preflight_from_an_allowed_origin_gets_204_and_the_policy(
    cors_client: httpx.AsyncClient, origin: str
) -> None:
    response = await cors_client.options(
        "/api/users/me", headers=_preflight(origin, "PATCH", "authorization, content-type")
    )
    assert response.status_code == 204
    assert response.content == b""
    headers = response.headers
    assert headers["access-control-allow-origin"] == origin
    assert set(headers["access-control-allow-methods"].split(", ")) == set(ALLOWED_METHODS)
    allowed_headers = {h.lower() for h in headers["access-control-allow-headers"].split(", ")}
    assert {"authorization", "content-type"} <= allowed_headers
    assert int(headers["access-control-max-age"]) > 0
    assert "origin" in headers["vary"].lower()
    assert "access-control-allow-credentials" not in headers


@pytest.mark.parametrize(
    "request_headers",
    [
        _preflight(OTHER_ORIGIN),  # origin not allowed
        _preflight("null"),  # a sandboxed frame or a file:// page
        _preflight(APP_ORIGIN, headers="x-custom"),  # a header not allowed
        _preflight(APP_ORIGIN, method="PUT"),  # a method not allowed
    ],
)
async def test_a_refused_preflight_gets_the_apps_answer_without_cors_headers(
    cors_client: httpx.AsyncClient, request_headers: dict[str, str]
) -> None:
    response = await cors_client.options("/api/auth/register", headers=request_headers)
    # as with CORS off: the app's 405 in the one error shape, no allow-origin
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "access-control-allow-origin" not in response.headers
    assert "x-request-id" in response.headers  # it went through the request context


# --- actual responses -----------------------------------------------------------------------


async def test_a_response_to_an_allowed_origin_names_it_and_exposes_the_ids(
    cors_client: httpx.AsyncClient, user_headers: dict[str, str]
) -> None:
    response = await cors_client.get(
        "/api/users/me", headers={**user_headers, "origin": APP_ORIGIN}
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "origin" in response.headers["vary"].lower()
    exposed = {h.strip() for h in response.headers["access-control-expose-headers"].split(",")}
    assert exposed == {"x-request-id", "x-trace-id", "retry-after", "www-authenticate", "allow"}
    assert "access-control-allow-credentials" not in response.headers


async def test_a_response_to_another_origin_names_none_but_still_varies(
    cors_client: httpx.AsyncClient,
) -> None:
    response = await cors_client.get("/api/health", headers={"origin": OTHER_ORIGIN})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    # a shared cache must not hand this answer to an allowed origin (or the reverse)
    assert "origin" in response.headers["vary"].lower()


async def test_a_request_without_origin_gets_no_allow_origin(
    cors_client: httpx.AsyncClient,
) -> None:
    response = await cors_client.get("/api/health")
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/api/users/me", {}, 401, "not_authenticated"),
        ("POST", "/api/auth/register", {"json": {}}, 422, "validation_error"),
        # answered by RequestContextMiddleware itself, before the app
        (
            "POST",
            "/api/auth/register",
            {"content": b'{"a": 1, "a": 2}', "headers": {"content-type": "application/json"}},
            422,
            "invalid_json",
        ),
        ("POST", "/api/auth/register", {"content": b"x" * (128 * 1024)}, 413, "payload_too_large"),
    ],
)
async def test_errors_carry_the_cors_headers_so_the_browser_can_read_them(
    cors_client: httpx.AsyncClient,
    method: str,
    path: str,
    kwargs: dict[str, object],
    status: int,
    code: str,
) -> None:
    headers = {"origin": APP_ORIGIN, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    response = await cors_client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "x-request-id" in response.headers["access-control-expose-headers"]


async def test_any_origin_locally_answers_with_a_star() -> None:
    app = _cors_app("*")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        response = await client.get("/api/health", headers={"origin": OTHER_ORIGIN})
        preflight = await client.options("/api/auth/register", headers=_preflight(OTHER_ORIGIN))
    assert response.headers["access-control-allow-origin"] == "*"
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"


async def test_a_head_preflight_is_allowed_as_every_get_path_answers_head(
    cors_client: httpx.AsyncClient,
) -> None:
    response = await cors_client.options(
        "/api/users/me", headers=_preflight(APP_ORIGIN, method="HEAD", headers="authorization")
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "HEAD" in response.headers["access-control-allow-methods"].split(", ")
