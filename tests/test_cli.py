"""`python -m lambda_app serve` (uvicorn) exits through its clean-up on SIGTERM and SIGINT."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.ports import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_signal(database_url_for_tests: str, stop_signal: int) -> None:
    port = free_port()
    username = f"cli_{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_tests,
        "ENVIRONMENT": "local",
        # A superuser of this test's own, not the local default `admin`: the test
        # database is shared with tests that expect no `admin` in it.
        "FIRST_SUPERUSER_USERNAME": username,
        "FIRST_SUPERUSER_EMAIL": f"{username}@example.com",
        "FIRST_SUPERUSER_PASSWORD": f"pw-{uuid.uuid4().hex}",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "lambda_app", "serve", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        health = None
        for _ in range(600):  # bounded wait for start-up
            if process.poll() is not None:
                break
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        process.send_signal(stop_signal)
        output, _ = process.communicate(timeout=30)

    assert health is not None and health.status_code == 200, output
    # 0, not death by the signal: the CLI left through its `with` blocks, which is
    # where an embedded PostgreSQL it started gets stopped.
    assert process.returncode == 0, output
