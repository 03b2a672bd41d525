"""`python -m lambda_app serve ...` as a subprocess, with a superuser of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent


def start_serve(
    database_url: str, *serve_args: str, port: int, username: str, password: str
) -> subprocess.Popen[str]:
    """Start the CLI's `serve` on `port`; its output (stdout and stderr) is in `.stdout`."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "local",
        # A superuser of this test's own, not the local default `admin`: the test
        # database is shared with tests that expect no `admin` in it.
        "FIRST_SUPERUSER_USERNAME": username,
        "FIRST_SUPERUSER_EMAIL": f"{username}@example.com",
        "FIRST_SUPERUSER_PASSWORD": password,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "lambda_app", "serve", *serve_args, "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_health(
    process: subprocess.Popen[str], port: int, *, timeout: float
) -> httpx.Response | None:
    """`GET /api/health` once the server answers; None if the process exits first."""
    for _ in range(600):  # bounded wait for start-up (migrations check, import)
        if process.poll() is not None:
            return None
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=timeout)
        except httpx.TransportError:
            time.sleep(0.1)
    return None
