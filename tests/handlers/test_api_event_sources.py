"""The API handler behind every event source: API Gateway REST (1.0) and HTTP (1.0, 2.0)
APIs, Function URLs and ALB (single- and multi-value headers)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fastapi import FastAPI

from lambda_app.docs_ui.router import STATIC_DIR
from tests.fixtures.accounts import register_and_login_via_handler
from tests.fixtures.lambda_events import (
    SOURCES,
    Handler,
    HttpRequest,
    bearer,
    function_url,
    http_api_v2,
    invoke,
    json_body,
    rest_api_v1,
)
from tests.handlers.extra_routes import blob_bytes

ALL_SOURCES = list(SOURCES)
PAYLOAD_V2 = {"http_api_v2", "function_url"}
# Only the REST API puts a stage in the URL; the other fixtures use `$default` / no stage.
STAGE_PREFIX = {"rest_api_v1": "/prod"}


@pytest.mark.parametrize("source", ALL_SOURCES)
def test_health_answers_with_the_lambda_request_id(api_handler: Handler, source: str) -> None:
    result = invoke(api_handler, SOURCES[source](HttpRequest("GET", "/api/health")))

    assert result.status == 200
    assert result.json() == {"status": "ok"}
    assert result.header("content-type") == "application/json"
    assert result.header("x-request-id") == result.request_id


@pytest.mark.parametrize("source", ALL_SOURCES)
def test_head_is_answered_like_get_without_a_body(api_handler: Handler, source: str) -> None:
    result = invoke(api_handler, SOURCES[source](HttpRequest("HEAD", "/api/health")))

    assert result.status == 200 and result.body == b""
    assert result.header("content-length") == str(len(b'{"status":"ok"}'))
    # an error to a HEAD: its status and headers, still no body
    anonymous = invoke(api_handler, SOURCES[source](HttpRequest("HEAD", "/api/users/me")))
    assert anonymous.status == 401 and anonymous.body == b""
    assert anonymous.header("www-authenticate") == "Bearer"
    # a path with no GET serves no HEAD either
    refused = invoke(api_handler, SOURCES[source](HttpRequest("HEAD", "/api/auth/register")))
    assert refused.status == 405 and refused.body == b""
    assert refused.header("allow") == "POST"


@pytest.mark.parametrize("source", ALL_SOURCES)
def test_register_login_and_me(api_handler: Handler, source: str) -> None:
    # given: a user created and logged in through this source (the login form is base64)
    build = SOURCES[source]
    account = register_and_login_via_handler(api_handler, build)

    # when
    me = invoke(
        api_handler, build(HttpRequest("GET", "/api/users/me", headers=bearer(account.token)))
    )

    # then
    assert me.status == 200, me.body
    assert me.json()["username"] == account.username


@pytest.mark.parametrize("source", ALL_SOURCES)
def test_base64_encoded_json_body(api_handler: Handler, source: str) -> None:
    body, headers = json_body({"username": "x", "email": "not-an-email", "password": "short"})
    request = HttpRequest(
        "POST", "/api/auth/register", headers=headers, body=body, base64_body=True
    )

    result = invoke(api_handler, SOURCES[source](request))

    # The body was decoded and parsed: validation ran on its fields.
    assert result.status == 422, result.body
    fields = {tuple(d["loc"]) for d in result.json()["error"]["details"]}
    assert {("body", "username"), ("body", "password")} <= fields


@pytest.mark.parametrize("source", ALL_SOURCES)
def test_errors_keep_the_standard_shape(api_handler: Handler, source: str) -> None:
    result = invoke(api_handler, SOURCES[source](HttpRequest("GET", "/api/no/such/thing")))

    assert result.status == 404
    assert result.json()["error"]["code"] == "not_found"
    assert result.header("x-request-id") == result.request_id


@pytest.mark.parametrize("source", ALL_SOURCES)
def test_favicon_is_a_binary_response(api_handler: Handler, source: str) -> None:
    result = invoke(
        api_handler, SOURCES[source](HttpRequest("GET", "/api/doc/static/favicon-32x32.png"))
    )

    assert result.status == 200
    assert result.raw["isBase64Encoded"] is True
    assert result.header("content-type") == "image/png"
    assert result.body == (STATIC_DIR / "favicon-32x32.png").read_bytes()


def test_rest_api_stage_prefix_reaches_the_docs_and_the_schema(api_handler: Handler) -> None:
    # The client calls /prod/api/...; the docs must point at /prod/..., not /api/...
    docs = invoke(api_handler, rest_api_v1(HttpRequest("GET", "/api/doc"), stage="prod"))
    schema = invoke(api_handler, rest_api_v1(HttpRequest("GET", "/api/openapi.json"), stage="prod"))
    script = invoke(
        api_handler,
        rest_api_v1(HttpRequest("GET", "/api/doc/static/swagger-ui-bundle.js"), stage="prod"),
    )

    assert docs.status == 200
    html = docs.body.decode()
    assert "url: '/prod/api/openapi.json'" in html
    assert 'src="/prod/api/doc/static/swagger-ui-bundle.js"' in html
    assert 'href="/prod/api/doc/static/swagger-ui.css"' in html
    assert schema.status == 200
    assert schema.json()["servers"] == [{"url": "/prod"}]
    assert "/api/users/me" in schema.json()["paths"]
    assert script.status == 200 and script.raw["isBase64Encoded"] is False
    assert script.body == (STATIC_DIR / "swagger-ui-bundle.js").read_bytes()


def test_http_api_named_stage_is_the_root_path(api_handler: Handler) -> None:
    # HTTP APIs keep a named stage in rawPath: /staging/api/openapi.json
    schema = invoke(
        api_handler, http_api_v2(HttpRequest("GET", "/api/openapi.json"), stage="staging")
    )
    health = invoke(api_handler, http_api_v2(HttpRequest("GET", "/api/health"), stage="staging"))

    assert schema.status == 200 and schema.json()["servers"] == [{"url": "/staging"}]
    assert health.status == 200


@pytest.mark.parametrize("source", [s for s in ALL_SOURCES if s not in STAGE_PREFIX])
def test_no_stage_in_the_url_means_no_server_prefix(api_handler: Handler, source: str) -> None:
    docs = invoke(api_handler, SOURCES[source](HttpRequest("GET", "/api/doc")))
    schema = invoke(api_handler, SOURCES[source](HttpRequest("GET", "/api/openapi.json")))

    assert "url: '/api/openapi.json'" in docs.body.decode()
    assert "servers" not in schema.json()


@pytest.mark.parametrize("source", ALL_SOURCES)
def test_the_path_is_percent_decoded_exactly_once(echo_app_handler: Handler, source: str) -> None:
    # The client's `a%2541%20b` is `a%41 b`. HTTP APIs hand the function the path decoded
    # (the fixtures do as they do), REST APIs, Function URLs and ALB as the client sent it.
    echoed = invoke(
        echo_app_handler, SOURCES[source](HttpRequest("GET", "/api/_test/segment/a%2541%20b"))
    )
    health = invoke(echo_app_handler, SOURCES[source](HttpRequest("GET", "/api/h%65alth")))
    not_health = invoke(echo_app_handler, SOURCES[source](HttpRequest("GET", "/api/h%2565alth")))

    assert echoed.status == 200 and echoed.json() == {"segment": "a%41 b"}
    assert health.status == 200 and health.json() == {"status": "ok"}
    assert not_health.status == 404 and not_health.json()["error"]["code"] == "not_found"


def test_a_decoded_path_behind_a_named_stage_keeps_its_percent_signs(
    echo_app_handler: Handler,
) -> None:
    event = http_api_v2(HttpRequest("GET", "/api/_test/segment/100%25%2541"), stage="staging")
    assert event["rawPath"] == "/staging/api/_test/segment/100%%41"

    echoed = invoke(echo_app_handler, event)

    assert echoed.status == 200 and echoed.json() == {"segment": "100%%41"}


def test_stage_named_like_the_api_prefix_still_routes(api_handler: Handler) -> None:
    # Stage "api": the client calls /api/api/health; only the first segment is the stage.
    rest = invoke(api_handler, rest_api_v1(HttpRequest("GET", "/api/health"), stage="api"))
    http = invoke(api_handler, http_api_v2(HttpRequest("GET", "/api/health"), stage="api"))
    schema = invoke(api_handler, rest_api_v1(HttpRequest("GET", "/api/openapi.json"), stage="api"))

    assert rest.status == 200 and http.status == 200
    assert schema.json()["servers"] == [{"url": "/api"}]


@pytest.mark.parametrize("source", ALL_SOURCES)
def test_repeated_query_keys_and_cookies_reach_the_app(
    echo_app_handler: Handler, source: str
) -> None:
    request = HttpRequest(
        "GET",
        "/api/_test/echo",
        query=[("tag", "a"), ("tag", "b,c"), ("q", "x y&z")],
        cookies=["session=abc", "theme=dark"],
    )

    echo = invoke(echo_app_handler, SOURCES[source](request)).json()

    # A comma inside a value survives: the raw / multi-value query is used, not the joined one.
    expected = [["tag", "a"], ["tag", "b,c"], ["q", "x y&z"]]
    if source == "alb":
        # Without multi-value headers enabled on the target group, ALB itself sends
        # only the last value of a repeated key (hence the README's advice).
        expected = [["tag", "b,c"], ["q", "x y&z"]]
    assert echo["query"] == expected
    assert echo["cookies"] == {"session": "abc", "theme": "dark"}
    prefix = STAGE_PREFIX.get(source, "")
    assert echo["path"] == f"{prefix}/api/_test/echo"
    assert echo["root_path"] == prefix


@pytest.mark.parametrize("source", ALL_SOURCES)
@pytest.mark.parametrize("encoded", [True, False], ids=["base64", "text"])
def test_request_bodies_arrive_byte_for_byte(
    echo_app_handler: Handler, source: str, encoded: bool
) -> None:
    body = blob_bytes(4096) if encoded else "naïve ☃ text".encode()
    content_type = "application/octet-stream" if encoded else "text/plain; charset=utf-8"
    request = HttpRequest(
        "POST",
        "/api/_test/echo",
        headers={"Content-Type": content_type},
        body=body,
        base64_body=encoded,
    )

    echo = invoke(echo_app_handler, SOURCES[source](request)).json()

    assert base64.b64decode(echo["body_b64"]) == body
    assert echo["content_type"] == content_type


@pytest.mark.parametrize("source", ALL_SOURCES)
def test_binary_response_body(echo_app_handler: Handler, source: str) -> None:
    request = HttpRequest("GET", "/api/_test/blob", query=[("size", "70000")])

    result = invoke(echo_app_handler, SOURCES[source](request))

    assert result.status == 200
    assert result.raw["isBase64Encoded"] is True
    assert result.body == blob_bytes(70000)


@pytest.mark.parametrize("source", ALL_SOURCES)
def test_several_cookies_in_one_response(echo_app_handler: Handler, source: str) -> None:
    result = invoke(echo_app_handler, SOURCES[source](HttpRequest("GET", "/api/_test/cookies")))

    assert result.status == 204
    cookies = sorted(result.set_cookies)
    assert len(cookies) == 2
    assert cookies[0].startswith("session=s3ss10n;") and "HttpOnly" in cookies[0]
    assert cookies[1].startswith("theme=dark;")
    # Each source has its own way to carry two Set-Cookie headers.
    raw = result.raw
    if source in PAYLOAD_V2:
        assert len(raw["cookies"]) == 2
    elif source == "alb":  # single-value headers: the name's casing varies per cookie
        assert sum(name.lower() == "set-cookie" for name in raw["headers"]) == 2
    else:
        assert len(raw["multiValueHeaders"]["set-cookie"]) == 2


def test_lifespan_never_runs_per_invocation(lambda_container: None) -> None:
    from mangum import Mangum

    from lambda_app.handlers.api import make_handler
    from lambda_app.main import create_app

    events: list[str] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = create_app()
    app.router.lifespan_context = lifespan
    handler = make_handler(app)

    for _ in range(3):
        assert invoke(handler, function_url(HttpRequest())).status == 200
    assert events == []

    # Control: with Mangum's default lifespan mode the same app starts and stops each time.
    invoke(Mangum(app), function_url(HttpRequest()))
    assert events == ["startup", "shutdown"]


def test_event_fixtures_are_valid_json_files() -> None:
    from tests.fixtures.lambda_events import EVENTS_DIR

    names = sorted(path.stem for path in EVENTS_DIR.glob("*.json"))
    assert names == sorted(SOURCES)
    for name in names:
        assert isinstance(json.loads((EVENTS_DIR / f"{name}.json").read_text()), dict)
