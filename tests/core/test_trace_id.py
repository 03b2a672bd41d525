"""The X-Ray trace id: on every log line of a request, and returned to the client."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from lambda_app.core.logging import TRACE_ID_ENV, JsonFormatter, parse_trace_id

ROOT = "1-5759e988-bd862e3fe1be46a994272793"
HEADER = f"Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1"
LAMBDA_ROOT = "1-67891233-abcdef012345678912345678"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def log_records() -> Iterator[list[dict[str, object]]]:
    collect = _Collect()
    root = logging.getLogger()
    root.addHandler(collect)
    yield collect.lines
    root.removeHandler(collect)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (HEADER, ROOT),
        (f"Self=1-67891234-12456789abcdef012345678;Root={ROOT}", ROOT),  # ALB adds Self
        ("Root=not-a-trace-id", None),
        (f"Root={ROOT}\r\nx-evil: 1", None),
        ("", None),
        (None, None),
    ],
)
def test_the_trace_id_is_the_root_of_the_header(header: str | None, expected: str | None) -> None:
    assert parse_trace_id(header) == expected


async def test_a_request_logs_and_returns_its_trace_id(
    client: httpx.AsyncClient, log_records: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TRACE_ID_ENV, raising=False)
    response = await client.get("/api/health", headers={"x-amzn-trace-id": HEADER})

    assert response.headers["x-trace-id"] == ROOT
    assert response.headers["x-request-id"]
    request_lines = [r for r in log_records if r["logger"] == "lambda_app.request"]
    assert request_lines and all(r["trace_id"] == ROOT for r in request_lines)


async def test_lambdas_own_trace_id_wins_over_the_header(
    client: httpx.AsyncClient, log_records: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # awslambdaric sets it per invocation: the trace X-Ray records for the function
    monkeypatch.setenv(TRACE_ID_ENV, f"Root={LAMBDA_ROOT};Parent=1234567890abcdef;Sampled=1")
    response = await client.get("/api/users/me", headers={"x-amzn-trace-id": HEADER})

    assert response.status_code == 401
    assert response.headers["x-trace-id"] == LAMBDA_ROOT
    assert {r.get("trace_id") for r in log_records if r["logger"].startswith("lambda_app")} == {  # type: ignore[attr-defined]
        LAMBDA_ROOT
    }


async def test_without_a_trace_there_is_no_header_and_no_field(
    client: httpx.AsyncClient, log_records: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TRACE_ID_ENV, raising=False)
    response = await client.get("/api/health", headers={"x-amzn-trace-id": "Root=junk"})

    assert "x-trace-id" not in response.headers
    assert not any("trace_id" in r for r in log_records)


def test_lines_outside_a_request_carry_the_invocations_trace_id(
    log_records: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # e.g. the migration function's lines
    monkeypatch.setenv(TRACE_ID_ENV, f"Root={LAMBDA_ROOT};Sampled=0")
    logging.getLogger("lambda_app.migrate").warning("migration finished")
    (line,) = log_records
    assert line["trace_id"] == LAMBDA_ROOT
