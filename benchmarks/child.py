"""What runs inside each measured process. Standard library only.

The runner passes this file's source with `python -S -c`, from inside a bundle
folder, so the process sees what a Lambda container sees: the bundle on
`sys.path`, the interpreter's own precompiled standard library, nothing else.
Everything it needs comes from environment variables read before the clock
starts; the result is written as JSON to `BENCH_OUT`. A warm process (`BENCH_WARM_FDS`)
also takes its batches of invocations from the runner through a pipe.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import time
from collections.abc import Iterator
from typing import Any


class LambdaContext:
    """The attributes Mangum and the handlers read from the Lambda context object."""

    function_name = "bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:bench"
    memory_limit_in_mb = 1024
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"

    def __init__(self, request_number: int) -> None:
        self.aws_request_id = f"bench-{os.getpid()}-{request_number}"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def _peak_rss_kib() -> int:
    """This process's peak resident set size.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (much larger)
    parent across fork and exec, so it would report the runner's size.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _is_ok(response: Any) -> bool:
    return isinstance(response, dict) and response.get("statusCode") == 200


def _warm_batches(control_fd: int, ack_fd: int) -> Iterator[int]:
    """Batch sizes the runner sends, one per line; each batch is acknowledged when done.

    The runner keeps the warm processes alive side by side and hands out batches in
    turn, so they share whatever the machine is doing while they are measured.
    """
    with os.fdopen(control_fd, "r", encoding="ascii") as control:
        for line in control:
            if not line.strip():
                return
            yield int(line)
            os.write(ack_fd, b"\n")


def main() -> None:
    module_name, _, attribute = os.environ["BENCH_HANDLER"].partition(":")
    event = json.loads(os.environ["BENCH_EVENT"])
    out_path = os.environ["BENCH_OUT"]
    # Warm mode: "<control fd>,<ack fd>". The first line starts the clock (the import and
    # first invocation, acknowledged), then each line is a batch of warm invocations.
    warm_fds = os.environ.get("BENCH_WARM_FDS")
    batches: Iterator[int] = iter(())
    if warm_fds:
        control_fd, ack_fd = (int(fd) for fd in warm_fds.split(","))
        batches = _warm_batches(control_fd, ack_fd)
        next(batches, None)

    started = time.perf_counter()
    module = importlib.import_module(module_name)
    imported = time.perf_counter()
    if attribute:
        handler = getattr(module, attribute)
        first = handler(event, LambdaContext(0))
    else:  # import only (S): no handler, no request, no warm invocations
        first = None
    answered = time.perf_counter()

    result: dict[str, Any] = {
        "import_ms": (imported - started) * 1000,
        "first_invoke_ms": (answered - imported) * 1000,
        "cold_ms": (answered - started) * 1000,
        "first_status": first.get("statusCode") if isinstance(first, dict) else None,
        "first_body": first.get("body") if isinstance(first, dict) else None,
        "handler_file": getattr(module, "__file__", None),  # which copy ran: the bundle's
    }

    latencies: list[float] = []
    failures = 0
    for batch in batches:
        for _ in range(batch):
            context = LambdaContext(len(latencies) + 1)
            before = time.perf_counter()
            response = handler(event, context)
            after = time.perf_counter()
            latencies.append((after - before) * 1000)
            failures += not _is_ok(response)
    result["warm_ms"] = latencies
    result["warm_failures"] = failures
    result["peak_rss_kib"] = _peak_rss_kib()
    with open(out_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


main()
