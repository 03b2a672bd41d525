"""SnapStart on the target: the API bundle under awslambdaric's snap-start path.

With `AWS_LAMBDA_INITIALIZATION_TYPE=snap-start` the runtime client runs init, then the
before-snapshot hooks, then calls the Runtime API's `restore/next`; Lambda snapshots the
memory while that call waits and answers it in each restored container, whose runtime
runs the after-restore hooks before its first `invocation/next`, or reports their failure
to `restore/error`. Here one process plays both: the test looks at it while `restore/next`
waits (what the snapshot would hold), then lets the call return. A probe on the function's
path, as a layer would be (snapstart_layer/), wraps the API's handler and says what its
hooks saw around the app's own.
"""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from pathlib import Path

import psutil
import pytest
from sqlalchemy.engine import make_url

from tests.fixtures.lambda_events import HttpRequest, http_api_v2, json_body, parse_result
from tests.lambda_target.arm64_runtime import make_read_only
from tests.lambda_target.bundles import Target
from tests.lambda_target.function_process import FunctionConfig, running_function
from tests.lambda_target.observe import json_lines

pytestmark = pytest.mark.slow

LAYER = Path(__file__).parent / "snapstart_layer"
INIT_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def layer(workspace: Path) -> Path:
    """The probe modules, readable by the function's user and read-only, like /opt."""
    path = workspace / "snapstart-layer"
    shutil.copytree(LAYER, path, ignore=shutil.ignore_patterns("__pycache__"))
    make_read_only(path)
    return path


def _snap_start(
    config: FunctionConfig, target: Target, layer: Path, handler: str
) -> FunctionConfig:
    # Lambda's sys.path: the bundle, then the layers' /opt/python, then /var/runtime.
    path = f"{target.bundle('api')}:{layer}:{target.runtime.runtime}"
    return dataclasses.replace(
        config.with_environment(PYTHONPATH=path), handler=handler, snap_start=True
    )


def _connections_to(pid: int, port: int) -> list[str]:
    """The states of the process's TCP sockets to `port` (each an open file of its own)."""
    return [
        connection.status
        for connection in psutil.Process(pid).net_connections("tcp")
        if connection.raddr and connection.raddr.port == port
    ]


def _probe(stdout: str) -> dict[str, dict[str, object]]:
    return {
        str(record["snapstart_probe"]): record
        for record in json_lines(stdout)
        if "snapstart_probe" in record
    }


def test_a_restored_container_runs_the_hooks_and_serves_its_first_request(
    target: Target,
    api_function: FunctionConfig,
    api_database_url_for_tests: str,
    layer: Path,
    logs: Path,
) -> None:
    # given: the API function keeping a connection, published with SnapStart
    config = _snap_start(
        api_function.with_environment(DATABASE_URL=api_database_url_for_tests, DB_POOL="single"),
        target,
        layer,
        "snapstart_probe.handler",
    )
    database_port = make_url(api_database_url_for_tests).port
    username = f"snap_{uuid.uuid4().hex[:10]}"
    body, headers = json_body(
        {"username": username, "email": f"{username}@example.com", "password": "snap-start pw"}
    )
    register = HttpRequest("POST", "/api/auth/register", headers=headers, body=body)

    with running_function(target.bundle("api"), target.runtime, config, logs=logs) as function:
        # when: init and the before-snapshot hooks have run, and Lambda takes the snapshot
        function.wait_snapshot(timeout_s=INIT_TIMEOUT_S)
        in_the_snapshot = _connections_to(function.process.pid, database_port)
        before_restore = _probe(function.stdout)
        # ...and a container restored from it gets its first request
        function.restore()
        first = function.invoke(http_api_v2(register))
        probe = _probe(function.stdout)

    # then: the before-snapshot hooks ran: the mappers are configured ahead
    # (prime_first_request), and the connection kept at init is closed, socket and all
    # (close_kept_connections), with nothing restored yet
    assert set(before_restore) == {"kept a connection", "snapshot"}
    assert before_restore["snapshot"]["mappers_configured"] is True
    assert in_the_snapshot == []
    # ...the after-restore hooks ran once restore/next returned: `random` reseeded and
    # multiprocessing's key drawn again, both unlike the snapshot's
    snapshot, restored = probe["snapshot"], probe["restored"]
    assert restored["random"] != snapshot["random"]
    assert restored["authkey"] != snapshot["authkey"]
    # ...and the first request was served, on a connection of its own
    assert first.kind == "response", (first.error_type, first.body)
    result = parse_result(first.json(), first.request_id)
    assert result.status == 201, result.body
    assert result.json()["username"] == username
    assert function.api.init_errors == [] and function.api.restore_errors == []


def test_a_failed_after_restore_hook_is_reported_to_restore_error(
    target: Target, api_function: FunctionConfig, layer: Path, logs: Path
) -> None:
    # given: a function whose after-restore hook raises (a small one: the failure's path
    # is the runtime's, whatever the app)
    config = _snap_start(api_function, target, layer, "restore_fails.handler")

    with running_function(target.bundle("api"), target.runtime, config, logs=logs) as function:
        # when: a container is restored from its snapshot
        function.wait_snapshot(timeout_s=INIT_TIMEOUT_S)
        function.restore()
        error = function.wait_restore_error(timeout_s=INIT_TIMEOUT_S)
        exit_code = function.wait_exit(timeout_s=30)

    # then: Lambda hears the hook's error as an after-restore error, and the container
    # never asks for an invocation
    assert error.error_type == "Runtime.AfterRestoreError"
    assert error.json()["errorType"] == "RuntimeError"
    assert error.json()["errorMessage"] == "the after-restore hook could not make its state again"
    assert exit_code != 0
    assert function.api.first_poll_at is None
