"""One process, many invocations: what a warm Lambda container lives through.

Event-loop and lifespan bugs only show after the first invocation (a loop closed
by one request and needed by the next, an engine disposed per request), so these
tests keep calling the same handler, then make a DB-backed authenticated request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from lambda_app.db import engine as db
from tests.fixtures.accounts import register_and_login_via_handler
from tests.fixtures.lambda_events import (
    SOURCES,
    Handler,
    HttpRequest,
    bearer,
    http_api_v2,
    invoke,
    request_log_records,
    rest_api_v1,
)
from tests.handlers.extra_routes import BOOM_MESSAGE

WARM_INVOCATIONS = 200


def test_building_the_handler_opens_no_connection(lambda_container: None) -> None:
    from lambda_app.handlers.api import make_handler
    from lambda_app.main import create_app

    make_handler(create_app())

    assert db._engine is None  # the first request that needs the database creates it


def test_importing_the_handler_turns_the_collector_back_on_with_its_objects_frozen() -> None:
    # given: a fresh interpreter, like a new container
    script = (
        "import gc, json, lambda_app.handlers.api; "
        "print(json.dumps([gc.isenabled(), gc.get_freeze_count()]))"
    )
    env = os.environ | {"ENVIRONMENT": "dev", "JWT_SECRET": "import-test-secret-0123456789abcdef"}
    # when: it imports the entry point (the collector is paused while the module builds)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    # then: collection is on again, and what the import built (FastAPI, SQLAlchemy, the
    # app: over a hundred thousand objects) is frozen out of every later full collection
    assert result.returncode == 0, result.stderr[-2000:]
    enabled, frozen = json.loads(result.stdout.splitlines()[-1])
    assert enabled is True
    assert frozen > 100_000


def test_authenticated_db_request_after_200_warm_invocations(api_handler: Handler) -> None:
    from lambda_app.handlers import api

    # given: a user, and the engine and event loop the container made for its requests
    account = register_and_login_via_handler(api_handler)
    engine, loop = db.get_engine(), api._loop
    me_request = HttpRequest("GET", "/api/users/me", headers=bearer(account.token))
    builders = list(SOURCES.values())

    # when: 200 warm invocations from every source, a DB-backed one every tenth
    request_ids = set()
    for i in range(WARM_INVOCATIONS):
        build = builders[i % len(builders)]
        request = me_request if i % 10 == 0 else HttpRequest("GET", "/api/health")
        result = invoke(api_handler, build(request))
        assert result.status == 200, (i, result.body)
        request_ids.add(result.header("x-request-id"))
    me = invoke(api_handler, rest_api_v1(me_request))

    # then
    assert me.status == 200, me.body
    assert me.json()["username"] == account.username
    assert len(request_ids) == WARM_INVOCATIONS
    assert db.get_engine() is engine  # created once per container, never per request
    assert api._loop is loop and loop is not None and not loop.is_closed()


def test_unhandled_exception_is_a_500_and_the_container_stays_healthy(
    echo_app_handler: Handler, log_lines: list[str]
) -> None:
    account = register_and_login_via_handler(echo_app_handler)

    # when: a request raises, from two sources in a row
    boom = invoke(echo_app_handler, http_api_v2(HttpRequest("GET", "/api/_test/boom")))
    boom_again = invoke(echo_app_handler, rest_api_v1(HttpRequest("GET", "/api/_test/boom")))

    # then: the standard error body, the request id, and a traceback in the log
    for result in (boom, boom_again):
        assert result.status == 500
        assert result.json() == {
            "error": {"code": "internal_error", "message": "Internal server error", "details": None}
        }
        assert result.header("x-request-id") == result.request_id
    records = [json.loads(line) for line in log_lines]
    errors = [
        r for r in records if r["level"] == "ERROR" and r.get("request_id") == boom.request_id
    ]
    assert len(errors) == 1
    assert errors[0]["exception"].startswith("Traceback (most recent call last)")
    assert f"RuntimeError: {BOOM_MESSAGE}" in errors[0]["exception"]
    logged = {r["request_id"]: r for r in request_log_records(log_lines)}
    assert logged[boom.request_id]["status"] == 500

    # and the same container still serves authenticated, DB-backed requests from every source
    for build in SOURCES.values():
        me = invoke(
            echo_app_handler,
            build(HttpRequest("GET", "/api/users/me", headers=bearer(account.token))),
        )
        assert me.status == 200, me.body
        assert me.json()["username"] == account.username
