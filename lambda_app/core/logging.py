"""Structured logging: one JSON object per line, ready for CloudWatch Logs Insights.

A small stdlib formatter rather than a logging framework: it costs nothing at
cold start and needs no dependency. Fields passed with `extra={"fields": {...}}`
are merged into the line.

Every line carries `trace_id`, the X-Ray trace id of the request (or invocation) it
belongs to, when there is one: the request's, bound by the request middleware, or else
the one Lambda sets per invocation in `_X_AMZN_TRACE_ID` (the migration function, and
lines written outside a request). No tracing SDK: it is a header to parse.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from contextvars import ContextVar, Token
from typing import Any

_configured = False

TRACE_ID_ENV = "_X_AMZN_TRACE_ID"  # set by Lambda's runtime client for each invocation
# `Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`: the
# trace id is the Root. Anything else (a client's own header, junk) is ignored.
_ROOT = re.compile(r"(?:^|;)\s*Root=(1-[0-9a-f]{8}-[0-9a-f]{24})(?:;|$)")
_request_trace_id: ContextVar[str | None] = ContextVar("trace_id", default=None)


def parse_trace_id(header: str | None) -> str | None:
    """The X-Ray trace id (the `Root`) of an `X-Amzn-Trace-Id` value, or None."""
    if not header or len(header) > 256:
        return None
    match = _ROOT.search(header)
    return match.group(1) if match else None


def invocation_trace_id() -> str | None:
    """The trace id Lambda set for the current invocation, or None."""
    return parse_trace_id(os.environ.get(TRACE_ID_ENV))


def bind_trace_id(trace_id: str | None) -> Token[str | None]:
    """Make `trace_id` the one of every line logged in this context (a request)."""
    return _request_trace_id.set(trace_id)


def unbind_trace_id(token: Token[str | None]) -> None:
    _request_trace_id.reset(token)


def current_trace_id() -> str | None:
    return _request_trace_id.get() or invocation_trace_id()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if trace_id := current_trace_id():
            line["trace_id"] = trace_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


# Their DEBUG lines carry whole request and response bodies: a secret's value from
# GetSecretValue, a mail with its single-use link for SendEmail. Never below INFO, even
# with LOG_LEVEL=DEBUG.
WIRE_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer")


def configure_logging(level: str = "INFO") -> None:
    """Install the JSON handler on the root logger once per process.

    On Lambda the runtime pre-installs a plain-text handler on the root logger;
    it is replaced so every line stays one JSON object.
    """
    global _configured
    root = logging.getLogger()
    root.setLevel(level.upper())
    for name in WIRE_LOGGERS:
        logging.getLogger(name).setLevel(max(root.level, logging.INFO))
    if _configured:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root.handlers[:] = [handler]
    _configured = True
