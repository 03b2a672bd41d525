"""The docs page in a real browser, behind a URL prefix, through the Lambda handler.

Headless Chromium (tests/fixtures/chromium.py) loads /prod/api/doc from
the local gateway with a named stage, so the page, its package-served assets and the
schema all travel the Lambda path with the `/prod` prefix a REST API stage adds. The
operations only appear in the DOM if the page found the schema at /prod/api/openapi.json.
The same again behind a custom domain's API mapping key (`--base-path v1`): /v1/api/doc.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambda_app.devtools.gateway import LambdaHandler
from tests.fixtures.chromium import rendered_dom
from tests.fixtures.harness import fresh_container, running_gateway


@pytest.fixture
def handler() -> Iterator[LambdaHandler]:
    with fresh_container():
        from lambda_app.handlers.api import handler

        yield handler


@pytest.fixture
def mapped_handler(monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaHandler]:
    """The container's handler as Lambda builds it behind a custom domain mapped at `v1`."""
    from lambda_app.core.settings import get_settings

    monkeypatch.setenv("API_BASE_PATH", "v1")  # what the stack sets with -c base_path=v1
    get_settings.cache_clear()
    try:
        with fresh_container():
            from lambda_app.handlers.api import _build_container_handler

            yield _build_container_handler()
    finally:
        monkeypatch.delenv("API_BASE_PATH")
        get_settings.cache_clear()


def test_docs_page_lists_the_operations_behind_a_stage_prefix(
    handler: LambdaHandler, tmp_path: Path
) -> None:
    with running_gateway(handler, stage="prod") as url:
        dom = rendered_dom(f"{url}/prod/api/doc", tmp_path / "profile")

    # Swagger UI rendered the schema: one block per operation, the tags, /prod as the server
    rendered_paths = set(re.findall(r'data-path="([^"]+)"', dom))
    assert {
        "/api/auth/register",
        "/api/auth/token",
        "/api/users/me",
        "/api/health",
    } <= rendered_paths
    assert {"auth", "users", "health"} <= set(re.findall(r'data-tag="([^"]+)"', dom))
    assert '<option value="/prod">' in dom
    assert "Failed to load API definition" not in dom


def test_docs_page_lists_the_operations_behind_a_custom_domain_mapping_key(
    mapped_handler: LambdaHandler, tmp_path: Path
) -> None:
    # given: the local gateway as a custom domain mapped at /v1 (the stage not in the URL)
    with running_gateway(mapped_handler, base_path="v1") as url:
        # when
        dom = rendered_dom(f"{url}/v1/api/doc", tmp_path / "profile")

    # then: the page found its assets and /v1/api/openapi.json, and names /v1 as the server
    rendered_paths = set(re.findall(r'data-path="([^"]+)"', dom))
    assert {"/api/auth/token", "/api/users/me", "/api/health"} <= rendered_paths
    assert '<option value="/v1">' in dom
    assert "Failed to load API definition" not in dom
