"""Init once, then "restore" twice: what two SnapStart containers of one snapshot do.

Run as `python -m tests.reliability.snapstart_driver <log file> <username prefix>` in a
fresh interpreter, with the app's settings in the environment. It builds the API
handler as Lambda's init does and runs the before-snapshot hooks. Then, one after
the other, two children are forked from that state, each as PID 1 of a PID namespace
of its own: a restored microVM sees the pid the snapshot was taken with, so the pid
tells containers apart no better than the rest of the memory does. Each child runs
the after-restore hooks, as the runtime does, and serves register, token and three
`me` requests. Prints one JSON line: per child, its pid, the statuses, and the
statement log's size before and after it (so the test can tell whose statements
are whose).
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

from tests.fixtures.lambda_context import FakeLambdaContext
from tests.fixtures.lambda_events import http_api_event, response_json
from tests.fixtures.snapstart import run_after_restore_hooks, run_before_snapshot_hooks

CLONE_NEWPID = 0x20000000
CLONE_NEWUSER = 0x10000000
PASSWORD = "snapstart test password"


def _new_pid_namespace() -> None:
    """The next child forked is PID 1 of a new namespace (root; else a user namespace)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWPID) == 0:
        return
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWPID) == 0:
        return
    raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWPID) failed: no PID namespaces here")


def _serve_as_restored_container(handler: object, username: str) -> dict[str, object]:
    run_after_restore_hooks()

    def call(event: dict[str, object]) -> tuple[int, object]:
        response = handler(event, FakeLambdaContext())  # type: ignore[operator]
        return response["statusCode"], response_json(response)

    statuses = []
    status, _ = call(
        http_api_event(
            "POST",
            "/api/auth/register",
            json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
        )
    )
    statuses.append(status)
    status, body = call(
        http_api_event("POST", "/api/auth/token", form={"username": username, "password": PASSWORD})
    )
    statuses.append(status)
    token = body["access_token"] if isinstance(body, dict) else ""
    for _ in range(3):
        status, _ = call(http_api_event("GET", "/api/users/me", token=token))
        statuses.append(status)
    return {"pid": os.getpid(), "statuses": statuses}


def _restore(handler: object, username: str, log_file: str) -> dict[str, object]:
    before = os.path.getsize(log_file)
    read, write = os.pipe()
    intermediate = os.fork()
    if intermediate == 0:
        os.close(read)
        code = 1
        try:
            _new_pid_namespace()
            container = os.fork()
            if container == 0:
                try:
                    report = _serve_as_restored_container(handler, username)
                    os.write(write, json.dumps(report).encode())
                finally:
                    os._exit(0)
            _, status = os.waitpid(container, 0)
            code = os.waitstatus_to_exitcode(status)
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        report: dict[str, object] = json.loads(pipe.read() or b"{}")
    os.waitpid(intermediate, 0)
    report["log_span"] = [before, os.path.getsize(log_file)]
    return report


def main() -> None:
    log_file, prefix = sys.argv[1:3]
    from lambda_app.handlers import api  # init: the imports and the app, as Lambda runs them

    run_before_snapshot_hooks()
    reports = [_restore(api.handler, f"{prefix}{n}", log_file) for n in (1, 2)]
    print(json.dumps(reports))


if __name__ == "__main__":
    main()
