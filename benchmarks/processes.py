"""Starting measured processes: one fresh interpreter per cold start, one for the warm run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.bundles import API_FOLDER, PEERS_FOLDER

CHILD_SOURCE = (Path(__file__).parent / "child.py").read_text(encoding="utf-8")
PROCESS_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class Handler:
    key: str  # "A", "B" or "C"
    label: str
    spec: str  # "module:attribute", imported from the bundle folder
    folder: str  # which bundle folder it runs from (benchmarks.bundles)


HANDLERS = (
    Handler(
        "A",
        "this project (lambda_app.handlers.api)",
        "lambda_app.handlers.api:handler",
        API_FOLDER,
    ),
    Handler("B", "floor: asyncpg + hmac/json", "benchmarks.peers.bare:handler", PEERS_FOLDER),
    Handler(
        "C",
        "peer: tutorial FastAPI + SQLAlchemy + Mangum",
        "benchmarks.peers.tutorial:handler",
        PEERS_FOLDER,
    ),
)


def api_gateway_v2_event(token: str) -> dict[str, Any]:
    """An HTTP API (payload format 2.0) event for an authenticated GET /api/users/me."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/api/users/me",
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "authorization": f"Bearer {token}",
            "host": "abcdef1234.execute-api.eu-west-1.amazonaws.com",
            "user-agent": "lambda-app-bench",
            "x-forwarded-for": "203.0.113.7",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdef1234",
            "domainName": "abcdef1234.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abcdef1234",
            "http": {
                "method": "GET",
                "path": "/api/users/me",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "lambda-app-bench",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "26/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1795694400000,
        },
        "isBase64Encoded": False,
    }


def child_environment(
    *, bundle: Path, database_url: str, jwt_secret: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """A minimal environment, like a Lambda function's: nothing leaks in from this shell."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(bundle),
        # Lambda's code folder is read-only: no process may leave bytecode behind.
        "PYTHONDONTWRITEBYTECODE": "1",
        "ENVIRONMENT": "prod",
        "LOG_LEVEL": "INFO",
        "DATABASE_URL": database_url,
        "JWT_SECRET": jwt_secret,
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    return env | (extra or {})


def run_handler_process(
    handler: Handler,
    *,
    bundle: Path,
    env: dict[str, str],
    event: dict[str, Any],
    warm_invocations: int = 0,
    warm_budget_seconds: float = 300.0,
) -> dict[str, Any]:
    """Start a fresh interpreter in `bundle`, answer `event` once (+ warm invocations)."""
    with tempfile.TemporaryDirectory(prefix="bench-child-") as scratch:
        out = Path(scratch) / "result.json"
        log = Path(scratch) / "stdout.log"
        child_env = env | {
            "BENCH_HANDLER": handler.spec,
            "BENCH_EVENT": json.dumps(event),
            "BENCH_OUT": str(out),
            "BENCH_WARM_INVOCATIONS": str(warm_invocations),
            "BENCH_WARM_BUDGET_SECONDS": str(warm_budget_seconds),
        }
        with log.open("wb") as stdout:  # the handlers' log lines, as Lambda would collect them
            completed = subprocess.run(
                [sys.executable, "-S", "-c", CHILD_SOURCE],
                cwd=bundle,
                env=child_env,
                stdout=stdout,
                stderr=subprocess.PIPE,
                timeout=PROCESS_TIMEOUT_SECONDS,
                check=False,
            )
        if completed.returncode != 0 or not out.exists():
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(
                f"handler {handler.key} failed (exit {completed.returncode}):\n"
                f"{completed.stderr.decode(errors='replace')[-4000:]}\n{tail}"
            )
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    if result["first_status"] != 200:
        raise RuntimeError(
            f"handler {handler.key} answered {result['first_status']}: {result['first_body']}"
        )
    return result
