"""Starting measured processes: one fresh interpreter per cold start, one for the warm run."""

from __future__ import annotations

import json
import os
import select
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.bundles import API_FOLDER, PEERS_FOLDER

CHILD_SOURCE = (Path(__file__).parent / "child.py").read_text(encoding="utf-8")
PROCESS_TIMEOUT_SECONDS = 600
# Warm invocations a process runs before the next one takes its turn: fine enough that
# the processes share the machine's busy spells, coarse enough that the first invocation
# of each turn (after a pause for the others' turns) is 10 of 2,000, under the 20 the p99 is.
WARM_BATCH = 200


@dataclass(frozen=True)
class Handler:
    key: str  # "A", "B", "C", or a reference: "S", "C-null"
    label: str
    spec: str  # "module:attribute" imported from the bundle folder; "module" if import_only
    folder: str  # which bundle folder it runs from (benchmarks.bundles)
    environment: tuple[tuple[str, str], ...] = ()  # what it needs on top of child_environment
    import_only: bool = False  # its process imports `spec` and answers no event (S)

    def __post_init__(self) -> None:
        if self.import_only == (":" in self.spec):
            raise ValueError(f"{self.key}: a handler names module:attribute, S a module")


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
# The stack's cost alone, in the cold rounds: the floor under A's and C's cold starts.
STACK = Handler(
    "S",
    "the stack alone: A's and C's libraries, imported",
    "benchmarks.peers.stack",
    PEERS_FOLDER,
    import_only=True,
)
# C as it would have to run behind RDS Proxy, in the warm rotation.
C_NULLPOOL = Handler(
    "C-null",
    "C with NullPool: a connection per request, as A and B",
    "benchmarks.peers.tutorial:handler",
    PEERS_FOLDER,
    environment=(("BENCH_PEER_POOL", "null"),),
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


def _handler_environment(
    handler: Handler, env: dict[str, str], event: dict[str, Any], out: Path
) -> dict[str, str]:
    """`env` (from `child_environment`) plus what child.py reads about its one run."""
    return (
        env
        | dict(handler.environment)
        | {
            "BENCH_HANDLER": handler.spec,
            "BENCH_EVENT": json.dumps(event),
            "BENCH_OUT": str(out),
        }
    )


def _read_result(handler: Handler, out: Path) -> dict[str, Any]:
    """What a process that exited cleanly wrote; its first answer must have been a 200."""
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    if not handler.import_only and result["first_status"] != 200:
        raise RuntimeError(
            f"handler {handler.key} answered {result['first_status']}: {result['first_body']}"
        )
    return result


def run_handler_process(
    handler: Handler, *, python: str, bundle: Path, env: dict[str, str], event: dict[str, Any]
) -> dict[str, Any]:
    """Start a fresh interpreter in `bundle`, import the handler and answer `event` once."""
    with tempfile.TemporaryDirectory(prefix="bench-child-") as scratch:
        out = Path(scratch) / "result.json"
        log = Path(scratch) / "stdout.log"
        with log.open("wb") as stdout:  # the handlers' log lines, as Lambda would collect them
            completed = subprocess.run(
                [python, "-S", "-c", CHILD_SOURCE],
                cwd=bundle,
                env=_handler_environment(handler, env, event, out),
                stdout=stdout,
                stderr=subprocess.PIPE,
                timeout=PROCESS_TIMEOUT_SECONDS,
                check=False,
            )
        if completed.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"handler {handler.key} failed (exit {completed.returncode}):\n"
                f"{completed.stderr.decode(errors='replace')[-4000:]}\n"
                f"{log.read_text(errors='replace')[-2000:]}"
            )
        return _read_result(handler, out)


@dataclass
class _WarmChild:
    """One warm process, waiting for batches of invocations (see child.py)."""

    handler: Handler
    process: subprocess.Popen[bytes]
    control: int  # write end: batch sizes, one per line
    ack: int  # read end: one line per finished batch
    out: Path
    log: Path
    pipes_open: bool = True

    def close_pipes(self) -> None:
        if self.pipes_open:
            os.close(self.control)
            os.close(self.ack)
            self.pipes_open = False

    def run_batch(self, invocations: int) -> None:
        try:
            os.write(self.control, f"{invocations}\n".encode())
            ready, _, _ = select.select([self.ack], [], [], PROCESS_TIMEOUT_SECONDS)
            answered = bool(ready) and os.read(self.ack, 1) == b"\n"
        except BrokenPipeError:  # the process is gone
            answered = False
        if not answered:
            self.process.kill()
            self.process.wait()
            raise RuntimeError(
                f"handler {self.handler.key} stopped answering (exit {self.process.returncode}):"
                f"\n{self.log.read_text(errors='replace')[-4000:]}"
            )

    def finish(self) -> dict[str, Any]:
        os.write(self.control, b"\n")
        returncode = self.process.wait(timeout=PROCESS_TIMEOUT_SECONDS)
        self.close_pipes()
        if returncode != 0 or not self.out.exists():
            raise RuntimeError(
                f"handler {self.handler.key} failed (exit {returncode}):\n"
                f"{self.log.read_text(errors='replace')[-4000:]}"
            )
        return _read_result(self.handler, self.out)


def _start_warm_child(
    handler: Handler,
    *,
    python: str,
    bundle: Path,
    env: dict[str, str],
    event: dict[str, Any],
    scratch: Path,
) -> _WarmChild:
    control_read, control_write = os.pipe()
    ack_read, ack_write = os.pipe()
    out = scratch / f"{handler.key}.json"
    log = scratch / f"{handler.key}.log"
    with log.open("wb") as output:  # log lines and any traceback, for the error message
        process = subprocess.Popen(
            [python, "-S", "-c", CHILD_SOURCE],
            cwd=bundle,
            env=_handler_environment(handler, env, event, out)
            | {"BENCH_WARM_FDS": f"{control_read},{ack_write}"},
            stdout=output,
            stderr=subprocess.STDOUT,
            pass_fds=(control_read, ack_write),
        )
    os.close(control_read)
    os.close(ack_write)
    return _WarmChild(handler, process, control_write, ack_read, out, log)


def run_warm_interleaved(
    runs: list[tuple[Handler, Path, dict[str, str]]],
    *,
    python: str,
    event: dict[str, Any],
    invocations: int,
    batch: int = WARM_BATCH,
) -> dict[str, dict[str, Any]]:
    """One warm process per (handler, bundle, environment), measured side by side.

    Each process is started, imported and answers its first event in turn; then they
    take batches of `batch` invocations in turn, in a rotating order, until each has
    done `invocations`. Only one of them runs at any moment, and all live through the
    same moments of a shared, noisy machine: a busy spell lands on every handler's
    figures alike instead of on whichever process happened to run then.
    """
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as scratch_dir:
        scratch = Path(scratch_dir)
        children: list[_WarmChild] = []
        try:
            for handler, bundle, env in runs:
                children.append(
                    _start_warm_child(
                        handler, python=python, bundle=bundle, env=env, event=event, scratch=scratch
                    )
                )
            for child in children:
                child.run_batch(0)  # the import and the first (cold) invocation
            done = 0
            turn = 0
            while done < invocations:
                size = min(batch, invocations - done)
                shift = turn % len(children)
                for child in children[shift:] + children[:shift]:
                    child.run_batch(size)
                done += size
                turn += 1
            return {child.handler.key: child.finish() for child in children}
        finally:
            for child in children:
                if child.process.poll() is None:
                    child.process.kill()
                    child.process.wait()
                child.close_pipes()


def measure_warm_rounds(
    runs: list[tuple[Handler, Path, dict[str, str]]],
    *,
    python: str,
    event: dict[str, Any],
    invocations: int,
    rounds: int,
    check: Callable[[Handler, dict[str, Any]], None],
) -> dict[str, dict[str, Any]]:
    """`rounds` of `run_warm_interleaved`, each process's result passed to `check` (which
    raises for a wrong one); per handler, the round with the median p50 (with all rounds'
    figures, `report.median_round`)."""
    by_handler: dict[str, list[dict[str, Any]]] = {h.key: [] for h, _, _ in runs}
    for _ in range(rounds):
        warm = run_warm_interleaved(runs, python=python, event=event, invocations=invocations)
        for handler, _, _ in runs:
            check(handler, warm[handler.key])
            by_handler[handler.key].append(report.summarize_warm(warm[handler.key]))
    return {key: report.median_round(r) for key, r in by_handler.items()}
