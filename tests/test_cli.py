"""`python -m lambda_app serve` (uvicorn) exits through its clean-up on SIGTERM and SIGINT."""

import signal
import uuid

import pytest

from tests.fixtures.ports import free_port
from tests.fixtures.serve_process import start_serve, wait_for_health


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_signal(database_url_for_tests: str, stop_signal: int) -> None:
    port = free_port()
    process = start_serve(
        database_url_for_tests,
        port=port,
        username=f"cli_{uuid.uuid4().hex[:12]}",
        password=f"pw-{uuid.uuid4().hex}",
    )
    try:
        health = wait_for_health(process, port, timeout=5)
    finally:
        process.send_signal(stop_signal)
        output, _ = process.communicate(timeout=30)

    assert health is not None and health.status_code == 200, output
    # 0, not death by the signal: the CLI left through its `with` blocks, which is
    # where an embedded PostgreSQL it started gets stopped.
    assert process.returncode == 0, output
