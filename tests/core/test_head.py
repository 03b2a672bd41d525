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


def _path_value(parameter: dict[str, Any], user_id: int) -> str | None:
    """The superuser's id for a user id; None for a parameter we have no real value for."""
    return str(user_id) if parameter["name"] == "user_id" else None


def _made_up_value(parameter: dict[str, Any]) -> str:
    """A value its schema accepts: a new route's id then names a missing row, a 404 for
    the HEAD to answer too, not a 422."""
    schema = parameter["schema"]
    if schema.get("type") == "integer":
        return str(schema.get("minimum", 1))
    return "x" * schema.get("minLength", 1)


def _get_paths(schema: dict[str, Any], user_id: int) -> dict[str, bool]:
    """Every GET the schema documents, each path parameter filled (a new GET route is
    covered too), and whether a made-up value filled one."""
    paths = {}
    for template, operations in schema["paths"].items():
        if "get" not in operations:
            continue
        path, made_up = template, False
        for parameter in operations["get"].get("parameters", []):
            if parameter["in"] == "path":
                value = _path_value(parameter, user_id)
                if value is None:
                    value, made_up = _made_up_value(parameter), True
                path = path.replace(f"{{{parameter['name']}}}", value)
        assert "{" not in path, f"{template}: a path parameter its GET does not document"
        paths[path] = made_up
    return paths


async def test_every_get_path_answers_head_with_gets_headers_and_no_body(
    client: httpx.AsyncClient, superuser: User, superuser_headers: dict[str, str]
) -> None:
    schema = (await client.get("/api/openapi.json")).json()
    paths = _get_paths(schema, superuser.id)
    assert {"/api/users/me", "/api/users", f"/api/users/{superuser.id}"} <= set(paths)

    for path, made_up in [*paths.items(), ("/api/openapi.json", False), ("/api/doc", False)]:
        got = await client.get(path, headers=superuser_headers)
        head = await client.head(path, headers=superuser_headers)

        # A made-up id may name no row: then the GET's 404 is the HEAD's too.
        assert got.status_code in ({200, 404} if made_up else {200}), (path, got.text)
        assert (head.status_code, head.content) == (got.status_code, b""), path
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
