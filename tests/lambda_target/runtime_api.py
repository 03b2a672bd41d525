"""The Lambda Runtime API (version 2018-06-01), served on loopback for one function process.

What the real service offers a runtime, and nothing more: the runtime client polls
`GET /runtime/invocation/next` (it blocks until there is an event), then answers with
`POST /runtime/invocation/{id}/response` or `.../error`; a failed init is reported with
`POST /runtime/init/error`. Tests queue events with `invoke()` and get what the function
answered; the time of the first `next` poll is when init ended (what Lambda reports as
Init Duration).

With SnapStart (`AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`) the runtime, its init and
before-snapshot hooks done, calls `GET /runtime/restore/next`: Lambda snapshots the memory
while that call waits, and answers it (200) in each container restored from the snapshot.
The runtime then runs the after-restore hooks and polls `invocation/next`, or reports their
failure with `POST /runtime/restore/error` (202) and exits. Here `restore/next` waits until
the test calls `restore()`, so a test sees the process as the snapshot would hold it. As
Lambda's own Runtime API does, this one refuses (403, InvalidStateTransition) a
`restore/next` after the runtime has called it or polled for an invocation, and a
`restore/error` outside a restore.

Documented at https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html and
https://docs.aws.amazon.com/lambda/latest/dg/snapstart-runtime-hooks-custom.html
"""

from __future__ import annotations

import enum
import json
import os
import queue
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_VERSION = "2018-06-01"
PREFIX = f"/{API_VERSION}/runtime"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
# Lambda refuses a synchronous response (and an error document) larger than this.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
RESTORE_NEXT = f"{PREFIX}/restore/next"
RESTORE_ERROR = f"{PREFIX}/restore/error"
_INVOCATION_PATH = re.compile(rf"^{PREFIX}/invocation/(?P<id>[^/]+)/(?P<kind>response|error)$")


class _QuietServer(ThreadingHTTPServer):
    """Says nothing when a stopped function drops its open `next` poll (a connection reset):
    every function stopped between invocations does, and the traceback would be noise."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FunctionExited(RuntimeError):
    """The function process ended while the test was waiting for it."""


@dataclass
class Invocation:
    request_id: str
    event: bytes
    timeout_s: float
    trace_id: str
    deadline_ms: int = 0  # set when delivered: the function's timeout runs from there
    delivered_at: float | None = None  # when the runtime's `next` poll got it
    finished_at: float | None = None
    kind: str | None = None  # "response" or "error"
    body: bytes = b""
    error_type: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def duration_s(self) -> float:
        assert self.delivered_at is not None and self.finished_at is not None
        return self.finished_at - self.delivered_at


@dataclass(frozen=True)
class InitError:
    """What the runtime reported to `init/error` (or, after a restore, `restore/error`)."""

    error_type: str | None
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Phase(enum.Enum):
    """Where the runtime is, for the SnapStart routes' state checks."""

    INIT = "init"  # init running: restore/next, or a first invocation/next, may come
    SNAPSHOT = "snapshot"  # restore/next waiting: what the process holds is the snapshot
    RESTORED = "restored"  # restore/next answered: after-restore hooks running
    INVOKING = "invoking"  # invocation/next polled


def _trace_id() -> str:
    # X-Ray's format: Root=1-<epoch seconds, hex>-<96 random bits>;Parent=...;Sampled=0
    return (
        f"Root=1-{int(time.time()):08x}-{os.urandom(12).hex()};"
        f"Parent={os.urandom(8).hex()};Sampled=0"
    )


class RuntimeApi:
    """One function's Runtime API endpoint, on 127.0.0.1 and a free port."""

    def __init__(self, *, function_arn: str, timeout_s: float) -> None:
        self.function_arn = function_arn
        self.timeout_s = timeout_s
        self._pending: queue.Queue[Invocation] = queue.Queue()
        self._invocations: dict[str, Invocation] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._init_errors: list[InitError] = []
        self._init_error_seen = threading.Event()
        self._phase = _Phase.INIT
        self._snapshot_taken = threading.Event()  # restore/next arrived
        self._restored = threading.Event()  # the test let restore/next answer
        self._restore_errors: list[InitError] = []
        self._restore_error_seen = threading.Event()
        self.first_poll_at: float | None = None  # init is over when the runtime first polls
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def address(self) -> str:
        """What AWS_LAMBDA_RUNTIME_API holds: host:port, no scheme."""
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> RuntimeApi:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # releases a `next` poll still waiting
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RuntimeApi:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- what tests call -------------------------------------------------------------

    def invoke(
        self, event: Any, *, alive: Callable[[], bool], timeout_s: float | None = None
    ) -> Invocation:
        """Queue `event`, wait for the function's response or error, return it."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        invocation = Invocation(
            request_id=str(uuid.uuid4()),
            event=json.dumps(event).encode(),
            timeout_s=timeout_s,
            trace_id=_trace_id(),
        )
        with self._lock:
            self._invocations[invocation.request_id] = invocation
        self._pending.put(invocation)
        self._wait(invocation.done, alive=alive, timeout_s=timeout_s, what="a response")
        return invocation

    def wait_init_error(self, *, alive: Callable[[], bool], timeout_s: float) -> InitError:
        """The init error the function reports (it exits right after)."""
        self._wait(self._init_error_seen, alive=alive, timeout_s=timeout_s, what="an init error")
        return self._init_errors[0]

    @property
    def init_errors(self) -> list[InitError]:
        return list(self._init_errors)

    def wait_snapshot(self, *, alive: Callable[[], bool], timeout_s: float) -> None:
        """Until the runtime calls `restore/next`: init and the before-snapshot hooks done."""
        self._wait(self._snapshot_taken, alive=alive, timeout_s=timeout_s, what="restore/next")

    def restore(self) -> None:
        """Answer the waiting `restore/next`: the container is restored from the snapshot."""
        assert self._snapshot_taken.is_set(), "the runtime has not called restore/next"
        self._restored.set()

    def wait_restore_error(self, *, alive: Callable[[], bool], timeout_s: float) -> InitError:
        """The after-restore hooks' failure the runtime reports (it exits right after)."""
        self._wait(
            self._restore_error_seen, alive=alive, timeout_s=timeout_s, what="a restore error"
        )
        return self._restore_errors[0]

    @property
    def snapshot_taken(self) -> bool:
        return self._snapshot_taken.is_set()

    @property
    def restore_errors(self) -> list[InitError]:
        return list(self._restore_errors)

    def _wait(
        self, done: threading.Event, *, alive: Callable[[], bool], timeout_s: float, what: str
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while not done.wait(0.05):
            if not alive():
                # One last look: the answer may have arrived just before the exit.
                if done.wait(0.5):
                    return
                raise FunctionExited(f"the function process exited before sending {what}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} from the function within {timeout_s:.0f} s")

    # --- the HTTP side ------------------------------------------------------------------

    def _enter(self, phase: _Phase, *, allowed_from: tuple[_Phase, ...]) -> bool:
        with self._lock:
            if self._phase not in allowed_from:
                return False
            self._phase = phase
            return True

    def _restore_next(self) -> bool:
        """False when the runtime is in no state to be snapshotted, or shutting down."""
        if not self._enter(_Phase.SNAPSHOT, allowed_from=(_Phase.INIT,)):
            return False
        self._snapshot_taken.set()
        while not self._restored.wait(0.05):
            if self._closing.is_set():
                return False
        return self._enter(_Phase.RESTORED, allowed_from=(_Phase.SNAPSHOT,))

    def _record_restore_error(self, body: bytes, error_type: str | None) -> bool:
        if not self._enter(_Phase.RESTORED, allowed_from=(_Phase.RESTORED,)):
            return False
        self._restore_errors.append(InitError(error_type=error_type, body=body))
        self._restore_error_seen.set()
        return True

    def _next_invocation(self) -> Invocation | None:
        if self.first_poll_at is None:
            self.first_poll_at = time.perf_counter()
        self._enter(_Phase.INVOKING, allowed_from=(_Phase.INIT, _Phase.RESTORED, _Phase.INVOKING))
        while not self._closing.is_set():
            try:
                invocation = self._pending.get(timeout=0.05)
            except queue.Empty:
                continue
            invocation.delivered_at = time.perf_counter()
            invocation.deadline_ms = int((time.time() + invocation.timeout_s) * 1000)
            return invocation
        return None

    def _finish(self, request_id: str, kind: str, body: bytes, error_type: str | None) -> bool:
        with self._lock:
            invocation = self._invocations.get(request_id)
            if invocation is None or invocation.delivered_at is None or invocation.done.is_set():
                return False
            invocation.finished_at = time.perf_counter()
            invocation.kind, invocation.body, invocation.error_type = kind, body, error_type
        invocation.done.set()
        return True

    def _record_init_error(self, body: bytes, error_type: str | None) -> None:
        self._init_errors.append(InitError(error_type=error_type, body=body))
        self._init_error_seen.set()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            # HTTP/1.1: the runtime client keeps one connection open across polls.
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the tests report what matters; per-request lines are noise

            def do_GET(self) -> None:
                if self.path == RESTORE_NEXT:
                    if api._restore_next():
                        self._reply(HTTPStatus.OK, b"")
                    else:
                        self._refuse_transition("restore/next")
                    return
                if self.path != f"{PREFIX}/invocation/next":
                    self._reply(HTTPStatus.NOT_FOUND, _error("UnknownPath", self.path))
                    return
                invocation = api._next_invocation()
                if invocation is None:  # shutting down
                    self.close_connection = True
                    self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, _error("Shutdown", "closing"))
                    return
                self._reply(
                    HTTPStatus.OK,
                    invocation.event,
                    {
                        "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                        "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": api.function_arn,
                        "Lambda-Runtime-Trace-Id": invocation.trace_id,
                    },
                )

            def do_POST(self) -> None:
                body = self._read_body()
                if body is None:
                    self._reply(
                        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                        _error("RequestEntityTooLarge", f"over {MAX_PAYLOAD_BYTES} bytes"),
                    )
                    return
                error_type = self.headers.get(ERROR_TYPE_HEADER)
                if self.path == f"{PREFIX}/init/error":
                    api._record_init_error(body, error_type)
                    self._reply(HTTPStatus.ACCEPTED, b'{"status":"OK"}')
                    return
                if self.path == RESTORE_ERROR:
                    if api._record_restore_error(body, error_type):
                        self._reply(HTTPStatus.ACCEPTED, b'{"status":"OK"}')
                    else:
                        self._refuse_transition("restore/error")
                    return
                match = _INVOCATION_PATH.match(self.path)
                if match is None:
                    self._reply(HTTPStatus.NOT_FOUND, _error("UnknownPath", self.path))
                elif api._finish(match["id"], match["kind"], body, error_type):
                    self._reply(HTTPStatus.ACCEPTED, b'{"status":"OK"}')
                else:
                    self._reply(HTTPStatus.BAD_REQUEST, _error("InvalidRequestID", match["id"]))

            def _refuse_transition(self, route: str) -> None:
                message = f"{route} is not allowed in the runtime's state ({api._phase.value})"
                self._reply(HTTPStatus.FORBIDDEN, _error("InvalidStateTransition", message))

            def _read_body(self) -> bytes | None:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    return self._read_chunked()
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_PAYLOAD_BYTES:
                    self.close_connection = True
                    return None
                return self.rfile.read(length)

            def _read_chunked(self) -> bytes | None:
                chunks = []
                size = 0
                while True:
                    chunk_size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if chunk_size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        break
                    size += chunk_size
                    if size > MAX_PAYLOAD_BYTES:
                        self.close_connection = True
                        return None
                    chunks.append(self.rfile.read(chunk_size))
                    self.rfile.readline()  # the CRLF after each chunk
                return b"".join(chunks)

            def _reply(
                self, status: HTTPStatus, body: bytes, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

        return Handler


def _error(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()
