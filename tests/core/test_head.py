"""Every path that answers GET answers HEAD: GET's status and headers, without the body.

HTTP asks it of every general-purpose server (RFC 9110, 9.1), and uptime monitors and
link checkers probe with HEAD. FastAPI routes only the methods a route declares, so the
outermost middleware serves a HEAD as its GET and drops the body (`core.middleware`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from lambda_app.core import metrics
from lambda_app.models import User


def _get_paths(schema: dict[str, Any], user_id: int) -> list[str]:
    """Every GET the schema documents, with a real id: a new GET route is covered too."""
    return [
        path.replace("{user_id}", str(user_id))
        for path, operations in schema["paths"].items()
        if "get" in operations
    ]


async def test_every_get_path_answers_head_with_gets_headers_and_no_body(
    client: httpx.AsyncClient, superuser: User, superuser_headers: dict[str, str]
) -> None:
    schema = (await client.get("/api/openapi.json")).json()
    paths = _get_paths(schema, superuser.id)
    assert {"/api/users/me", "/api/users", f"/api/users/{superuser.id}"} <= set(paths)

    for path in [*paths, "/api/openapi.json", "/api/doc"]:
        got = await client.get(path, headers=superuser_headers)
        head = await client.head(path, headers=superuser_headers)

        assert got.status_code == 200, (path, got.text)
        assert (head.status_code, head.content) == (200, b""), path
        assert head.headers["content-type"] == got.headers["content-type"], path
        assert head.headers["content-length"] == str(len(got.content)), path
    # HEAD is implied by GET: the schema documents no HEAD operation of its own
    assert not any("head" in operations for operations in schema["paths"].values())


async def test_a_head_is_refused_as_its_get_is_and_still_has_no_body(
    client: httpx.AsyncClient,
) -> None:
    anonymous = await client.head("/api/users/me")
    assert (anonymous.status_code, anonymous.content) == (401, b"")
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert int(anonymous.headers["content-length"]) > 0  # the GET's error body, not sent

    missing = await client.head("/api/nothing-here")
    assert (missing.status_code, missing.content) == (404, b"")


async def test_a_path_with_no_get_serves_no_head(client: httpx.AsyncClient) -> None:
    refused = await client.head("/api/auth/token")
    assert (refused.status_code, refused.content) == (405, b"")
    assert refused.headers["allow"] == "POST"
    # ... and a path with a GET names HEAD among the methods it allows
    wrong = await client.put("/api/users/me")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD, PATCH"


async def test_the_log_line_and_the_metrics_name_head(
    client: httpx.AsyncClient,
    user_headers: dict[str, str],
    emf_lines: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="lambda_app.request"):
        await client.head("/api/users/me", headers=user_headers)

    (request,) = [r for r in map(json.loads, emf_lines) if metrics.REQUESTS in r]
    assert (request["Method"], request["Route"], request["StatusClass"]) == (
        "HEAD",
        "/api/users/me",
        "2xx",
    )
    (logged,) = [r for r in caplog.records if r.getMessage() == "request"]
    fields: dict[str, Any] = logged.fields  # type: ignore[attr-defined]
    assert (fields["method"], fields["path"], fields["status"]) == ("HEAD", "/api/users/me", 200)
