"""EMF metrics: every line the app writes is valid Embedded Metric Format, dimensions stay
low-cardinality, and each metric is written where its event happens."""

from __future__ import annotations

import asyncio
import json
import math
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.core import metrics
from lambda_app.core.settings import get_settings
from lambda_app.devtools.database import database_url, drop_database, ensure_database
from lambda_app.handlers.migrate import run_migration_event
from lambda_app.identity import password_attempts
from lambda_app.migrate.runner import alembic_config
from lambda_app.migrate.settings import get_migration_settings
from lambda_app.models import User
from tests.fixtures.accounts import TOKEN_PATH, register_and_login
from tests.migrations.scripts import real_revisions

ALLOWED_UNITS = {unit.value for unit in metrics.Unit}


# --- the specification, as checks ------------------------------------------------------
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def emf_problems(line: str) -> list[str]:
    """What makes `line` invalid EMF (empty: valid)."""
    if "\n" in line:
        return ["more than one line"]
    record = json.loads(line)
    if not isinstance(record, dict):
        return ["not a JSON object"]
    meta = record.get("_aws")
    if not isinstance(meta, dict):
        return ["no _aws object"]
    problems = []
    timestamp = meta.get("Timestamp")
    if not (isinstance(timestamp, int) and not isinstance(timestamp, bool) and timestamp > 10**12):
        problems.append(f"Timestamp is not an int of milliseconds: {timestamp!r}")
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return [*problems, "CloudWatchMetrics is not a non-empty list"]
    for directive in directives:
        namespace = directive.get("Namespace")
        if not isinstance(namespace, str) or not 0 < len(namespace) <= 255:
            problems.append(f"Namespace: {namespace!r}")
        dimension_sets = directive.get("Dimensions")
        if not isinstance(dimension_sets, list):
            problems.append("Dimensions is not a list")
            dimension_sets = []
        for names in dimension_sets:
            if not isinstance(names, list) or len(names) > 30:
                problems.append(f"dimension set of more than 30 names or not a list: {names!r}")
                continue
            for name in names:
                value = record.get(name)
                if not isinstance(value, str) or not 0 < len(value) <= 1024:
                    problems.append(f"dimension {name!r} has no string value at the top level")
        definitions = directive.get("Metrics")
        if not isinstance(definitions, list) or not 0 < len(definitions) <= 100:
            problems.append("Metrics is not a list of 1 to 100 definitions")
            definitions = []
        for definition in definitions:
            name = definition.get("Name")
            if not isinstance(name, str) or not 0 < len(name) <= 255:
                problems.append(f"metric Name: {name!r}")
                continue
            if "Unit" in definition and definition["Unit"] not in ALLOWED_UNITS:
                problems.append(f"{name}: unit {definition['Unit']!r} is not allowed")
            value = record.get(name)
            values = value if isinstance(value, list) else [value]
            if not values or len(values) > 100 or not all(_is_number(v) for v in values):
                problems.append(f"{name}: value {value!r} is not a number or list of numbers")
    return problems


def test_the_checks_catch_what_the_specification_forbids() -> None:
    good = metrics.emf_record({"Requests": (1, metrics.Unit.COUNT)}, {"Stage": "dev"})
    assert emf_problems(json.dumps(good)) == []
    bad: dict[str, Any] = json.loads(json.dumps(good))
    bad["_aws"]["Timestamp"] = "now"
    bad["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = "Requests"
    bad["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = [["Stage", "Route"]]
    bad["Requests"] = "1"
    assert len(emf_problems(json.dumps(bad))) == 4
    assert emf_problems(json.dumps({"Requests": 1})) == ["no _aws object"]


# --- capture ---------------------------------------------------------------------------


def records(lines: list[str], metric: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, lines) if metric in r]


# --- the module ------------------------------------------------------------------------


def test_a_record_puts_dimensions_and_values_at_the_top_level() -> None:
    record = metrics.emf_record(
        {"Latency": (12.5, metrics.Unit.MILLISECONDS)},
        {"Stage": "prod"},
        timestamp_ms=1_700_000_000_000,
    )
    assert record == {
        "_aws": {
            "Timestamp": 1_700_000_000_000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "LambdaApp",
                    "Dimensions": [["Stage"]],
                    "Metrics": [{"Name": "Latency", "Unit": "Milliseconds"}],
                }
            ],
        },
        "Stage": "prod",
        "Latency": 12.5,
    }


@pytest.mark.parametrize(
    ("status", "expected"), [(200, "2xx"), (204, "2xx"), (301, "3xx"), (404, "4xx"), (503, "5xx")]
)
def test_status_class(status: int, expected: str) -> None:
    assert metrics.status_class(status) == expected


def test_methods_outside_the_standard_set_share_one_value() -> None:
    assert metrics.method_name("GET") == "GET"
    assert metrics.method_name("BREW") == metrics.method_name("X" * 100) == "OTHER"


def test_a_request_without_a_route_counts_as_unmatched() -> None:
    assert metrics.route_template({"path": "/nope"}) == "unmatched"


# --- the app's main paths --------------------------------------------------------------


async def test_every_line_of_the_main_paths_is_valid_emf(
    client: httpx.AsyncClient, superuser_headers: dict[str, str], emf_lines: list[str]
) -> None:
    # given: a cold container
    metrics.reset_cold_start()
    # when: the main paths, successes and failures
    account = await register_and_login(client)
    await client.get("/api/health")
    await client.get("/api/users/me", headers=account.headers)
    await client.get("/api/users/me")  # 401
    await client.get("/api/users", headers=superuser_headers)
    await client.patch("/api/users/me", headers=account.headers, json={"first_name": "Ada"})
    await client.post(TOKEN_PATH, data={"username": account.username, "password": "wrong"})
    await client.get("/api/no/such/path")
    await client.post(
        "/api/auth/register", content=b"{", headers={"content-type": "application/json"}
    )

    # then
    assert emf_lines
    for line in emf_lines:
        assert emf_problems(line) == [], line
    requests = records(emf_lines, metrics.REQUESTS)
    routes = {(r["Method"], r["Route"], r["StatusClass"]) for r in requests}
    assert ("GET", "/api/users/me", "2xx") in routes
    assert ("GET", "/api/users/me", "4xx") in routes
    assert ("POST", "/api/auth/token", "4xx") in routes
    assert ("GET", "unmatched", "4xx") in routes  # the 404
    assert ("POST", "unmatched", "4xx") in routes  # refused before routing: invalid JSON
    assert {r["Stage"] for r in requests} == {get_settings().environment}
    assert all(r[metrics.REQUEST_LATENCY] >= 0 for r in requests)
    (cold,) = records(emf_lines, metrics.COLD_START)
    assert cold[metrics.COLD_START] == 1 and cold[metrics.INIT_DURATION] >= 0
    assert len(records(emf_lines, metrics.LOGIN_FAILURES)) == 1


async def test_the_docs_routes_name_their_route_like_the_api_routes(
    client: httpx.AsyncClient, emf_lines: list[str]
) -> None:
    # FastAPI's router records the route it matched for its own routes only: the app's
    # plain Starlette routes (the OpenAPI document, the docs UI's files) record themselves.
    await client.get("/api/openapi.json")
    refused = await client.post("/api/openapi.json")  # 405: partly matched, still that route
    assert refused.headers["allow"] == "GET, HEAD"  # as the API's own 405s list them
    await client.get("/api/doc/static/swagger-ui.css")
    await client.get("/api/doc/static/no-such-file.css")  # 404 from the route itself

    routes = {
        (r["Method"], r["Route"], r["StatusClass"]) for r in records(emf_lines, metrics.REQUESTS)
    }
    assert routes == {
        ("GET", "/api/openapi.json", "2xx"),
        ("POST", "/api/openapi.json", "4xx"),
        ("GET", "/api/doc/static/{path}", "2xx"),
        ("GET", "/api/doc/static/{path}", "4xx"),
    }


async def test_route_dimension_is_the_template_never_the_path(
    client: httpx.AsyncClient,
    superuser: User,
    superuser_headers: dict[str, str],
    emf_lines: list[str],
) -> None:
    # when: 100 different user ids (the superuser's own among them)
    ids = [superuser.id, *range(10_000_000, 10_000_099)]
    for user_id in ids:
        await client.get(f"/api/users/{user_id}", headers=superuser_headers)

    # then
    reads = [r for r in records(emf_lines, metrics.REQUESTS) if r["Method"] == "GET"]
    assert len(reads) == 100
    assert {r["Route"] for r in reads} == {"/api/users/{user_id}"}
    assert {r["StatusClass"] for r in reads} == {"2xx", "4xx"}


async def test_cold_start_is_written_once_per_container(
    client: httpx.AsyncClient, emf_lines: list[str]
) -> None:
    metrics.reset_cold_start()
    for _ in range(3):
        await client.get("/api/health")
    assert len(records(emf_lines, metrics.COLD_START)) == 1
    assert len(records(emf_lines, metrics.REQUESTS)) == 3


async def test_a_lockout_is_counted_once_when_the_limit_is_reached(
    session: AsyncSession, emf_lines: list[str]
) -> None:
    # Straight to the counter: through the rolled-back `client`, each failed login's
    # rollback would undo its count (tests/reliability/test_auth_attacks.py commits).
    settings = get_settings()
    keys = password_attempts.keys_for(login=f"victim_{uuid.uuid4().hex[:8]}")
    # when: the limit's worth of wrong guesses on one login name, and one more (refused)
    for _ in range(settings.login_max_failures + 1):
        await password_attempts.guess(session, keys, settings, lambda: False)

    # then
    (lockout,) = records(emf_lines, metrics.LOGIN_LOCKOUTS)
    assert lockout[metrics.LOGIN_LOCKOUTS] == 1
    assert lockout["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Stage"]]
    assert emf_problems(emf_lines[0]) == []


# --- the migration function ------------------------------------------------------------


@pytest.fixture
def empty_database(admin_url: str) -> Iterator[str]:
    suffix = os.environ.get("TEST_DATABASE_SUFFIX", "")
    name = f"lambda_app_metrics_{uuid.uuid4().hex[:10]}{suffix}"
    asyncio.run(ensure_database(admin_url, name))
    saved = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = database_url(admin_url, name)
    get_migration_settings.cache_clear()
    try:
        yield name
    finally:
        if saved is not None:
            os.environ["DATABASE_URL"] = saved
        get_migration_settings.cache_clear()
        asyncio.run(drop_database(admin_url, name))


def test_a_migration_writes_revisions_applied_and_duration(
    empty_database: str, emf_lines: list[str]
) -> None:
    result = run_migration_event({"action": "upgrade"}, config=alembic_config())

    (line,) = emf_lines
    assert emf_problems(line) == []
    record = json.loads(line)
    assert record[metrics.MIGRATION_REVISIONS_APPLIED] == len(result["applied"])
    assert record[metrics.MIGRATION_REVISIONS_APPLIED] == len(real_revisions())
    assert record[metrics.MIGRATION_DURATION] >= 0
    assert (record["Stage"], record["Action"]) == (get_settings().environment, "upgrade")
