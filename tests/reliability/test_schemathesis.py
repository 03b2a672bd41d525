"""Property-based testing of every operation in the app's own OpenAPI schema (schemathesis).

Every check, and the examples, coverage, fuzzing and stateful phases, as `st run`
would run them, configured by `schemathesis.toml` at the repository root (seed,
example counts, and each per-operation expectation with its reason). Anonymous and
as a superuser with a real token, against an app that commits for real to a scratch
database. No 5xx, and every response must match the schema: status code, content
type, headers (`Allow` included) and body; schema-valid data must be accepted and
schema-invalid data refused.

Cost, measured on 2 cores (schemathesis 4.32.5, the example counts in schemathesis.toml):
65 s for both runs (anonymous 26 s, superuser 37 s), 38 s more than the examples-only
run it replaced (27 s).
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from schemathesis.engine.run import PhaseName

from lambda_app.docs_ui.router import OPENAPI_PATH
from tests.reliability.databases import insert_superuser

pytestmark = pytest.mark.slow

CONFIG_PATH = Path(__file__).resolve().parents[2] / "schemathesis.toml"
PHASES = (
    PhaseName.EXAMPLES,
    PhaseName.COVERAGE,
    PhaseName.FUZZING,
    PhaseName.STATEFUL_TESTING,
)


async def _superuser_token(app: Any, database_url: str) -> str:
    username, password = f"fuzz_admin_{uuid.uuid4().hex[:8]}", "fuzzing admin password"
    await insert_superuser(database_url, username, password)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post(
            "/api/auth/token", data={"username": username, "password": password}
        )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _run(app: Any, headers: dict[str, str]) -> list[str]:
    """Run every phase; what went wrong, one entry per failed check or error."""
    schema = schemathesis.openapi.from_asgi(
        OPENAPI_PATH, app, config=SchemathesisConfig.from_path(CONFIG_PATH)
    )
    schema.config.update(headers=headers)
    problems: list[str] = []
    finished: dict[PhaseName, Status] = {}
    for event in from_schema(schema).execute():
        if isinstance(event, events.PhaseFinished):
            finished[event.phase.name] = event.status
        elif isinstance(event, events.NonFatalError | events.FatalError):
            problems.append(f"error: {event}")
        elif isinstance(event, events.ScenarioFinished) and event.status == Status.FAILURE:
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        problems.append(
                            f"[{event.phase.value}] {event.label} {check.name}: {failure.title}\n"
                            f"{failure.message}\n{check.failure_info.code_sample}"
                        )
    skipped = [phase.value for phase in PHASES if finished.get(phase) in (None, Status.SKIP)]
    assert not skipped, f"phases that did not run: {skipped}"
    return problems


@pytest.mark.parametrize("caller", ["anonymous", "superuser"])
def test_every_operation_keeps_its_contract(
    caller: str, committing_app: Any, committing_database: str
) -> None:
    headers = {}
    if caller == "superuser":
        token = asyncio.run(_superuser_token(committing_app, committing_database))
        headers = {"Authorization": f"Bearer {token}"}
    problems = _run(committing_app, headers)
    # Deduplicated: the same failure found by several phases is one finding.
    assert not problems, "\n\n".join(dict.fromkeys(problems))
