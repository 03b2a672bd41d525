"""Lambda containers as real processes: the API handler imported in-process, events over a pipe.

Each `LambdaContainer` is what one warm Lambda container is: one process, one
handler, one lazily created engine, serving one event at a time. The harness
bounds every invocation with a timeout, so a hang fails the test instead of
stalling it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

_SPAWN = multiprocessing.get_context("spawn")  # a fresh interpreter, like a cold start


def redirect_output(log_path: str) -> None:
    """Send the process's stdout/stderr (the app's JSON log lines) to a file the test can read."""
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the process
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


def container_environment(database_url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "local",
        "JWT_SECRET": "test-secret-that-is-long-enough-0123456789",
        "LOG_LEVEL": "INFO",
        **extra,
    }


def _serve(conn: Connection, env: dict[str, str], log_path: str) -> None:
    redirect_output(log_path)
    os.environ.update(env)
    from lambda_app.handlers.api import handler
    from tests.fixtures.lambda_context import FakeLambdaContext

    conn.send(("ready", os.getpid()))
    while True:
        message = conn.recv()
        if message is None:
            return
        try:
            response = handler(message, FakeLambdaContext())
        except BaseException as exc:  # the handler itself crashed: report, keep serving
            conn.send(("crash", repr(exc)))
        else:
            conn.send(("ok", response))


class LambdaContainer:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._conn, child = _SPAWN.Pipe()
        self.process = _SPAWN.Process(target=_serve, args=(child, env, str(log_path)), daemon=True)
        self.process.start()
        child.close()
        kind, self.pid = self._receive(timeout=180)  # a cold start on a busy machine
        assert kind == "ready"

    def __call__(self, event: dict[str, Any], context: object = None) -> dict[str, Any]:
        """The container as a handler (for the shared helpers); it has a context of its own."""
        return self.invoke(event)

    def invoke(self, event: dict[str, Any], *, timeout: float = 60) -> dict[str, Any]:
        """Send one event and wait for the response; a TimeoutError means the container hung."""
        self._conn.send(event)
        return self.wait_response(timeout=timeout)

    def send(self, event: dict[str, Any]) -> None:
        """Start an invocation without waiting for it (see `wait_response`)."""
        self._conn.send(event)

    def wait_response(self, *, timeout: float = 60) -> dict[str, Any]:
        kind, payload = self._receive(timeout=timeout)
        if kind != "ok":
            raise AssertionError(f"the handler crashed: {payload}")
        assert isinstance(payload, dict)
        return payload

    def is_alive(self) -> bool:
        return self.process.is_alive()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError):  # the process may have died already
                self._conn.send(None)
            self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=10)
        self._conn.close()

    def _receive(self, *, timeout: float) -> tuple[str, Any]:
        if not self._conn.poll(timeout):
            raise TimeoutError(f"no answer from the Lambda container within {timeout} s")
        kind, payload = self._conn.recv()
        return str(kind), payload
