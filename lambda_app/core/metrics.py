"""CloudWatch metrics as Embedded Metric Format (EMF) lines on stdout, without an SDK.

Lambda sends stdout to CloudWatch Logs, which turns each JSON line carrying an `_aws`
block into metrics. Writing them is one `json.dumps` of a small dict: no client, no
network call, nothing imported but the standard library. The format:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html

Every dimension here has a small, fixed set of values: a route *template*, never a
path; a method from a fixed list; a status class. A raw path or a user id as a
dimension would make a new metric (billed per month) per value.

The names are constants so the dashboard and alarms (infra_cdk/constructs/monitoring.py)
use the very names the app writes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from lambda_app import workload
from lambda_app.core.snapstart import after_restore

NAMESPACE = workload.STACK_PREFIX  # "LambdaApp"; the stage is a dimension


class Unit(StrEnum):
    """The units the EMF specification allows (CloudWatch's StandardUnit)."""

    SECONDS = "Seconds"
    MICROSECONDS = "Microseconds"
    MILLISECONDS = "Milliseconds"
    BYTES = "Bytes"
    KILOBYTES = "Kilobytes"
    MEGABYTES = "Megabytes"
    GIGABYTES = "Gigabytes"
    TERABYTES = "Terabytes"
    BITS = "Bits"
    KILOBITS = "Kilobits"
    MEGABITS = "Megabits"
    GIGABITS = "Gigabits"
    TERABITS = "Terabits"
    PERCENT = "Percent"
    COUNT = "Count"
    BYTES_PER_SECOND = "Bytes/Second"
    KILOBYTES_PER_SECOND = "Kilobytes/Second"
    MEGABYTES_PER_SECOND = "Megabytes/Second"
    GIGABYTES_PER_SECOND = "Gigabytes/Second"
    TERABYTES_PER_SECOND = "Terabytes/Second"
    BITS_PER_SECOND = "Bits/Second"
    KILOBITS_PER_SECOND = "Kilobits/Second"
    MEGABITS_PER_SECOND = "Megabits/Second"
    GIGABITS_PER_SECOND = "Gigabits/Second"
    TERABITS_PER_SECOND = "Terabits/Second"
    COUNT_PER_SECOND = "Count/Second"
    NONE = "None"


# --- names ---------------------------------------------------------------------------
# Dimensions
STAGE = "Stage"
ROUTE = "Route"
METHOD = "Method"
STATUS_CLASS = "StatusClass"
ACTION = "Action"

# Per request: dimension sets (Stage, Route, Method, StatusClass) and (Stage, Route, Method),
# the second so a route's latency percentiles need no sum over status classes.
REQUEST_LATENCY = "RequestLatency"  # Milliseconds, in the app (API Gateway's adds the network)
REQUESTS = "Requests"  # Count
# Once per container, dimension set (Stage)
COLD_START = "ColdStart"  # Count
INIT_DURATION = "InitDuration"  # Milliseconds, process start -> app built
# Logins, dimension set (Stage)
LOGIN_FAILURES = "LoginFailures"  # Count: a wrong password, an unknown or inactive user
LOGIN_LOCKOUTS = "LoginLockouts"  # Count: a login name reached the failure limit
# Account emails (lambda_app/identity/account_emails.py)
MAIL_FAILURES = "MailFailures"  # Count: a reset or verification email SES refused or lost
ACCOUNT_EMAILS_THROTTLED = "AccountEmailsThrottled"  # Count: an address past its hourly share
# (Recovery-email metrics, when that feature lands, go here: Count, dimension set (Stage).)
# The migration function, dimension set (Stage, Action)
MIGRATION_REVISIONS_APPLIED = "MigrationRevisionsApplied"  # Count (run or undone)
MIGRATION_DURATION = "MigrationDuration"  # Milliseconds

UNMATCHED_ROUTE = "unmatched"  # 404s, and requests answered before routing (413, bad JSON)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"

Metric = tuple[float, Unit]
Writer = Callable[[str], None]


def _stdout(line: str) -> None:
    # sys.stdout looked up per call: tests (capsys) and the runtime may replace it.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()  # Lambda's stdout is a pipe: block-buffered, and a frozen
    # container would keep the line until its next invocation


_write: Writer = _stdout


def set_writer(writer: Writer | None) -> None:
    """Send EMF lines to `writer` instead of stdout (None: stdout again). For tests."""
    global _write
    _write = writer or _stdout


def emf_record(
    metrics: Mapping[str, Metric],
    dimensions: Mapping[str, str],
    *,
    dimension_sets: Sequence[Sequence[str]] | None = None,
    timestamp_ms: int | None = None,
) -> dict[str, object]:
    """One EMF object: the `_aws` metadata, then each dimension and metric value at the top.

    `dimension_sets` defaults to one set of all `dimensions`.
    """
    sets = [list(s) for s in dimension_sets] if dimension_sets else [list(dimensions)]
    record: dict[str, object] = {
        "_aws": {
            "Timestamp": timestamp_ms if timestamp_ms is not None else int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": sets,
                    "Metrics": [
                        {"Name": name, "Unit": unit.value} for name, (_, unit) in metrics.items()
                    ],
                }
            ],
        },
        **dimensions,
    }
    for name, (value, _) in metrics.items():
        record[name] = value
    return record


def emit(
    metrics: Mapping[str, Metric],
    dimensions: Mapping[str, str],
    *,
    dimension_sets: Sequence[Sequence[str]] | None = None,
) -> None:
    """Write one EMF line."""
    _write(
        json.dumps(
            emf_record(metrics, dimensions, dimension_sets=dimension_sets), separators=(",", ":")
        )
    )


def count(name: str, *, stage: str, value: int = 1) -> None:
    """A Count metric with the stage as its only dimension (logins)."""
    emit({name: (value, Unit.COUNT)}, {STAGE: stage})


# --- requests ------------------------------------------------------------------------


def route_template(scope: Mapping[str, Any]) -> str:
    """The matched route's path template (`/api/users/{user_id}`), or `unmatched`.

    A route knows its path within its router only (`/users/{user_id}`); the prefixes it
    was included under (`/api`) are the part of the request path in front of it.
    Prefixes are static text here; one with a path parameter would need its own rule.
    """
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str) or not template:
        return UNMATCHED_ROUTE
    params = scope.get("path_params") or {}
    try:
        concrete = template.format_map({name: str(value) for name, value in params.items()})
    except (KeyError, IndexError, ValueError):
        return template
    path: str = scope.get("path", "")
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    if path.endswith(concrete):
        return path[: len(path) - len(concrete)] + template
    return template


def method_name(method: object) -> str:
    return method if isinstance(method, str) and method in _METHODS else OTHER_METHOD


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "5xx"


def record_request(
    *, stage: str, scope: Mapping[str, Any], status: int, duration_ms: float
) -> None:
    """Latency and a count for one request (and the container's cold start, on its first)."""
    if _cold_start_pending:
        _record_cold_start(stage)
    dimensions = {
        STAGE: stage,
        ROUTE: route_template(scope),
        METHOD: method_name(scope.get("method")),
        STATUS_CLASS: status_class(status),
    }
    emit(
        {REQUEST_LATENCY: (round(duration_ms, 2), Unit.MILLISECONDS), REQUESTS: (1, Unit.COUNT)},
        dimensions,
        dimension_sets=[[STAGE, ROUTE, METHOD, STATUS_CLASS], [STAGE, ROUTE, METHOD]],
    )


# --- cold starts ---------------------------------------------------------------------

_cold_start_pending = True
_init_duration_ms: float | None = None
_restored_from_snapshot = False


def _seconds_since_process_start() -> float | None:
    """How long this process has run, from /proc (Linux; 10 ms resolution), or None.

    On Lambda the process is the runtime, started when the container's init starts,
    so this is close to the `Init Duration` of Lambda's REPORT line.
    """
    try:
        with open("/proc/self/stat", "rb") as stat, open("/proc/uptime", "rb") as uptime:
            # Field 22 (starttime, in clock ticks since boot); the name (field 2) may hold
            # spaces, so count from the closing parenthesis.
            started_ticks = int(stat.read().rsplit(b")", 1)[1].split()[19])
            up = float(uptime.read().split()[0])
        return max(up - started_ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return None


def mark_init_complete() -> None:
    """Note that the container's init is done (called at the end of the handler module).

    Without it, init is taken to end at the first request: the same on demand, longer
    with provisioned concurrency (where init runs well before the first request).
    """
    global _init_duration_ms
    elapsed = _seconds_since_process_start()
    if elapsed is not None and _init_duration_ms is None:
        _init_duration_ms = elapsed * 1000


@after_restore
def _restored() -> None:
    # A SnapStart container did its init once, long ago, in the snapshotted one: its
    # cold start is the restore (Lambda reports it as Restore Duration), so only the
    # ColdStart count is written.
    global _cold_start_pending, _restored_from_snapshot
    _cold_start_pending = True
    _restored_from_snapshot = True


def _record_cold_start(stage: str) -> None:
    global _cold_start_pending
    _cold_start_pending = False
    metrics: dict[str, Metric] = {COLD_START: (1, Unit.COUNT)}
    if not _restored_from_snapshot:
        mark_init_complete()
    if not _restored_from_snapshot and _init_duration_ms is not None:
        metrics[INIT_DURATION] = (round(_init_duration_ms, 1), Unit.MILLISECONDS)
    emit(metrics, {STAGE: stage})


def reset_cold_start() -> None:
    """Make the next request the container's first again (tests)."""
    global _cold_start_pending, _init_duration_ms, _restored_from_snapshot
    _cold_start_pending = True
    _init_duration_ms = None
    _restored_from_snapshot = False


# --- the migration function ----------------------------------------------------------


def record_migration(*, stage: str, action: str, applied: int, duration_ms: float) -> None:
    emit(
        {
            MIGRATION_REVISIONS_APPLIED: (applied, Unit.COUNT),
            MIGRATION_DURATION: (round(duration_ms), Unit.MILLISECONDS),
        },
        {STAGE: stage, ACTION: action},
    )
