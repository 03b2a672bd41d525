"""One load-test worker process: one Lambda container driving a mixed, bounded workload.

The worker imports the real API handler in-process (its own engine, NullPool or a kept
connection as the plan says, through PgBouncer) and calls it with API Gateway 2.0
events, exactly as Lambda would. It reports every status it saw and every write the API
acknowledged, so the test can check afterwards, in PostgreSQL, that nothing acknowledged
was lost.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

from tests.fixtures.lambda_context import FakeLambdaContext
from tests.fixtures.lambda_events import http_api_event, response_json
from tests.reliability.containers import container_environment, redirect_output

PASSWORD = "load-test password 1"
# One cycle: 11 requests, of which 2 hash a password (register, token).
REQUESTS_PER_CYCLE = 11


@dataclass(frozen=True)
class WorkerPlan:
    index: int
    database_url: str
    superuser: str
    superuser_password: str
    cycles: int
    time_budget_seconds: float
    start_timeout_seconds: float  # for every worker's cold start (imports) to finish
    log_path: str
    db_pool: str = "null"  # DB_POOL: NullPool, or one kept connection per container


@dataclass
class WorkerReport:
    index: int
    pid: int
    started: float = 0.0
    finished: float = 0.0
    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # "operation status" -> count
    unexpected: list[str] = field(default_factory=list)
    # username -> the user as the API last acknowledged it
    acknowledged: dict[str, dict[str, Any]] = field(default_factory=dict)
    cycles_done: int = 0
    error: str | None = None


class _Client:
    def __init__(self, handler: Any, report: WorkerReport) -> None:
        self.handler = handler
        self.report = report

    def call(self, operation: str, expected: int, event: dict[str, Any]) -> Any:
        response = self.handler(event, FakeLambdaContext())
        status = int(response["statusCode"])
        self.report.requests += 1
        self.report.statuses[f"{operation} {status}"] += 1
        if status != expected:
            body = str(response.get("body"))[:300]
            self.report.unexpected.append(f"{operation}: {status} {body}")
            return None
        return response_json(response)


def run_worker(plan: WorkerPlan, barrier: Barrier, results: Queue[WorkerReport]) -> None:
    report = WorkerReport(index=plan.index, pid=os.getpid())
    try:
        redirect_output(plan.log_path)
        os.environ.update(container_environment(plan.database_url, DB_POOL=plan.db_pool))
        from lambda_app.handlers.api import handler  # the cold start, before the clock starts

        barrier.wait(timeout=plan.start_timeout_seconds)  # all cold starts done: go
        report.started = time.time()
        _workload(_Client(handler, report), plan, report)
    except BaseException as exc:
        report.error = repr(exc)
    finally:
        report.finished = time.time()
        results.put(report)


def _workload(client: _Client, plan: WorkerPlan, report: WorkerReport) -> None:
    deadline = time.monotonic() + plan.time_budget_seconds
    admin = client.call(
        "token",
        200,
        http_api_event(
            "POST",
            "/api/auth/token",
            form={"username": plan.superuser, "password": plan.superuser_password},
        ),
    )
    if admin is None:
        return
    admin_token = admin["access_token"]
    for cycle in range(plan.cycles):
        if time.monotonic() > deadline:
            return  # bounded in time as well as in count; the test reports the shortfall
        username = f"w{plan.index:02d}c{cycle:03d}_{uuid.uuid4().hex[:8]}"
        user = client.call(
            "register",
            201,
            http_api_event(
                "POST",
                "/api/auth/register",
                json={
                    "username": username,
                    "email": f"{username}@Load.Example.com",
                    "password": PASSWORD,
                    "first_name": "Löad",
                    "last_name": f"Cycle {cycle}",
                },
            ),
        )
        if user is None:
            continue
        report.acknowledged[username] = {
            k: user[k] for k in ("id", "email", "first_name", "last_name", "slug")
        }
        login = client.call(
            "token",
            200,
            http_api_event(
                "POST", "/api/auth/token", form={"username": username, "password": PASSWORD}
            ),
        )
        if login is None:
            continue
        token = login["access_token"]
        user_id = user["id"]

        me = client.call("me", 200, http_api_event("GET", "/api/users/me", token=token))
        if me is not None and me["username"] != username:
            report.unexpected.append(f"me: answered for {me['username']}, not {username}")
        _patch_me(client, report, token, username, {"first_name": f"Fïrst {plan.index}-{cycle} 🚀"})
        client.call("get", 200, http_api_event("GET", f"/api/users/{user_id}", token=token))
        client.call(
            "list",
            200,
            http_api_event(
                "GET",
                "/api/users",
                query={"limit": 20, "cursor": max(0, user_id - 10)},
                token=admin_token,
            ),
        )
        client.call("me", 200, http_api_event("GET", "/api/users/me", token=token))
        _patch_me(client, report, token, username, {"last_name": f"Lást {cycle}"})
        client.call("get", 200, http_api_event("GET", f"/api/users/{user_id}", token=admin_token))
        client.call(
            "list", 200, http_api_event("GET", "/api/users", query={"limit": 50}, token=admin_token)
        )
        client.call("me", 200, http_api_event("GET", "/api/users/me", token=token))
        report.cycles_done += 1


def _patch_me(
    client: _Client, report: WorkerReport, token: str, username: str, changes: dict[str, str]
) -> None:
    updated = client.call(
        "patch_me", 200, http_api_event("PATCH", "/api/users/me", json=changes, token=token)
    )
    if updated is not None:
        report.acknowledged[username].update({k: updated[k] for k in ("first_name", "last_name")})
