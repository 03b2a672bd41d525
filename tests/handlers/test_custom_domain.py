"""The API behind an API Gateway custom domain, with and without an API mapping key.

`https://api.example.com/v1/api/doc` reaches the function with the key still in the
path (`rawPath` and `requestContext.http.path` are `/v1/api/doc`), the custom domain as
`domainName` and the `$default` stage. The key comes from `API_BASE_PATH`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lambda_app.core.settings import ApiSettings, SettingsError, get_settings, load_settings
from lambda_app.docs_ui.router import STATIC_DIR
from tests.fixtures.lambda_events import (
    Handler,
    HttpRequest,
    http_api_v2,
    http_api_v2_custom_domain,
    invoke,
)


@pytest.fixture
def mapped_handler(lambda_container: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Handler]:
    """The container's handler as Lambda builds it, with API_BASE_PATH=v1 as the stack sets it."""
    from lambda_app.handlers import api

    monkeypatch.setenv("API_BASE_PATH", "v1")
    get_settings.cache_clear()
    try:
        yield api._build_container_handler()
    finally:
        monkeypatch.delenv("API_BASE_PATH")
        get_settings.cache_clear()


def test_docs_behind_a_mapping_key_load_everything_from_it(mapped_handler: Handler) -> None:
    # given: https://api.example.com/v1/... mapped to the $default stage
    # when
    docs = invoke(
        mapped_handler, http_api_v2_custom_domain(HttpRequest("GET", "/api/doc"), mapping_key="v1")
    )
    schema = invoke(
        mapped_handler,
        http_api_v2_custom_domain(HttpRequest("GET", "/api/openapi.json"), mapping_key="v1"),
    )
    script = invoke(
        mapped_handler,
        http_api_v2_custom_domain(
            HttpRequest("GET", "/api/doc/static/swagger-ui-bundle.js"), mapping_key="v1"
        ),
    )
    health = invoke(
        mapped_handler,
        http_api_v2_custom_domain(HttpRequest("GET", "/api/health"), mapping_key="v1"),
    )

    # then
    assert docs.status == 200
    html = docs.body.decode()
    assert "url: '/v1/api/openapi.json'" in html
    assert 'src="/v1/api/doc/static/swagger-ui-bundle.js"' in html
    assert 'href="/v1/api/doc/static/swagger-ui.css"' in html
    assert schema.status == 200 and schema.json()["servers"] == [{"url": "/v1"}]
    assert "/api/users/me" in schema.json()["paths"]
    assert script.status == 200
    assert script.body == (STATIC_DIR / "swagger-ui-bundle.js").read_bytes()
    assert health.status == 200


def test_the_execute_api_url_stays_at_the_root_with_a_mapping_key_set(
    mapped_handler: Handler,
) -> None:
    # The API's own endpoint still serves /api/... (no mapping there).
    schema = invoke(mapped_handler, http_api_v2(HttpRequest("GET", "/api/openapi.json")))
    staged = invoke(
        mapped_handler, http_api_v2(HttpRequest("GET", "/api/openapi.json"), stage="staging")
    )

    assert schema.status == 200 and "servers" not in schema.json()
    assert staged.status == 200 and staged.json()["servers"] == [{"url": "/staging"}]


def test_a_custom_domain_without_a_mapping_key_serves_from_its_root(api_handler: Handler) -> None:
    # A root mapping: no key in the URL, and a named stage behind it is not in the URL either.
    docs = invoke(api_handler, http_api_v2_custom_domain(HttpRequest("GET", "/api/doc")))
    schema = invoke(
        api_handler,
        http_api_v2_custom_domain(HttpRequest("GET", "/api/openapi.json"), stage="prod"),
    )

    assert docs.status == 200 and "url: '/api/openapi.json'" in docs.body.decode()
    assert schema.status == 200 and "servers" not in schema.json()


def test_a_multi_level_mapping_key_is_the_root_path(lambda_container: None) -> None:
    from lambda_app.handlers.api import make_handler
    from tests.handlers.extra_routes import app_with_test_routes

    handler = make_handler(app_with_test_routes(), base_path="orders/v2")
    event = http_api_v2_custom_domain(
        HttpRequest("GET", "/api/_test/echo"), mapping_key="orders/v2"
    )

    echo = invoke(handler, event).json()

    assert echo["path"] == "/orders/v2/api/_test/echo"
    assert echo["root_path"] == "/orders/v2"


def test_a_path_outside_the_mapping_key_is_not_given_its_prefix(mapped_handler: Handler) -> None:
    # The same domain's root mapping (if any) sending /api/... here: served unprefixed.
    result = invoke(mapped_handler, http_api_v2_custom_domain(HttpRequest("GET", "/api/health")))
    lookalike = invoke(
        mapped_handler,
        http_api_v2_custom_domain(HttpRequest("GET", "/api/health"), mapping_key="v10"),
    )

    assert result.status == 200
    assert lookalike.status == 404  # /v10 is not /v1: only whole segments are the key


@pytest.mark.parametrize(
    ("value", "key"), [("v1", "v1"), ("/v1/", "v1"), ("a/b", "a/b"), ("", None)]
)
def test_the_base_path_setting_is_a_mapping_key(value: str, key: str | None) -> None:
    assert load_settings(ApiSettings, api_base_path=value).api_base_path == key


@pytest.mark.parametrize("value", ["v 1", "a//b", "v1?x", "../v1"])
def test_a_base_path_api_gateway_would_refuse_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="API_BASE_PATH"):
        load_settings(ApiSettings, api_base_path=value)
