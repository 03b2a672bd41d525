"""The request log line and metrics every answered request writes, once.

The request middleware (lambda_app.core.middleware) writes them for every request the
app sees; the Lambda handler for the events it answers itself, which never become one
(lambda_app.handlers.api_events.rejection). Logs Insights queries on `message =
"request"` and the Requests, RequestLatency and ColdStart metrics then count both.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from lambda_app.core import metrics

logger = logging.getLogger("lambda_app.request")


def write_request_line_and_metrics(
    scope: Mapping[str, Any],
    *,
    stage: str,
    status: int,
    duration_ms: float,
    request_id: str,
    user_id: int | None,
) -> None:
    """The request's log line and metrics (the container's cold start, on its first)."""
    logger.info(
        "request",
        extra={
            "fields": {
                "method": scope.get("method"),
                "path": scope.get("path"),  # never the query string: it may hold secrets
                "status": status,
                "duration_ms": round(duration_ms, 2),
                "request_id": request_id,
                "user_id": user_id,
            }
        },
    )
    try:
        metrics.record_request(
            stage=stage,
            scope=scope,  # the router put the matched route in it: its template, never the path
            status=status,
            duration_ms=duration_ms,
        )
    except Exception:  # a metric is never worth failing (or hiding) a request over
        logger.warning("metrics not written", exc_info=True)
