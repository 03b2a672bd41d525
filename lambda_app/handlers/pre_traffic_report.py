"""The pre-traffic hook's report to CodeDeploy, tried again while the hook's time allows.

CodeDeploy waits an hour for a lifecycle event's status, then rolls the deployment back:
a report lost to a throttle or a broken connection would stall the stack update for that
hour. So a report that got no answer, or a throttle, is tried again after a pause that
doubles each time, as long as the hook's time left (the Lambda context's
get_remaining_time_in_millis) still holds the pause, a whole attempt and a margin. One
that never got through is logged, with the event's ids, and raised: the hook's
invocation then fails, and its log names the deployment left waiting.

Standard library and botocore only, like the hook (lambda_app.handlers.pre_traffic).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

# The report to CodeDeploy: attempts of at most 3 + 5 s each (botocore retries nothing:
# report() does, each attempt within the time left). The checks leave REPORT_MARGIN_MS
# for it: a few attempts, with the pauses between them.
REPORT_CONNECT_TIMEOUT_SECONDS = 3
REPORT_READ_TIMEOUT_SECONDS = 5
REPORT_ATTEMPT_WORST_MS = (REPORT_CONNECT_TIMEOUT_SECONDS + REPORT_READ_TIMEOUT_SECONDS) * 1000
REPORT_FIRST_PAUSE_SECONDS = 0.5
REPORT_MAX_PAUSE_SECONDS = 4.0
# Kept after the last attempt could end: its log line, and the hook's return.
REPORT_END_MARGIN_MS = 1_000
# Errors worth another attempt: no answer, or CodeDeploy asking to be called again later.
RETRYABLE_CODES = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}
)


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, (ConnectionError, HTTPClientError)):  # no answer (or none in time)
        return True
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in RETRYABLE_CODES or status >= 500
    return False


def report(
    codedeploy: Any,
    *,
    deployment_id: str,
    execution_id: str,
    status: str,
    remaining_ms: Callable[[], int],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Tell CodeDeploy `status`, trying again while the hook's time allows another attempt."""
    pause = REPORT_FIRST_PAUSE_SECONDS
    attempts = 0
    while True:
        attempts += 1
        try:
            codedeploy.put_lifecycle_event_hook_execution_status(
                deploymentId=deployment_id,
                lifecycleEventHookExecutionId=execution_id,
                status=status,
            )
            return
        except ClientError as exc:
            if attempts > 1 and exc.response.get("Error", {}).get("Code") == (
                "LifecycleEventAlreadyCompletedException"
            ):  # an earlier attempt reached CodeDeploy; its answer was lost
                return
            last: Exception = exc
        except Exception as exc:
            last = exc
        left_ms = remaining_ms()
        if _retryable(last) and left_ms >= (
            pause * 1000 + REPORT_ATTEMPT_WORST_MS + REPORT_END_MARGIN_MS
        ):
            logger.warning("pre-traffic report attempt %d failed: %r; trying again", attempts, last)
            sleep(pause)
            pause = min(pause * 2, REPORT_MAX_PAUSE_SECONDS)
            continue
        logger.error(
            json.dumps(
                {
                    "message": "pre-traffic report failed: CodeDeploy waits out its hour",
                    "deployment_id": deployment_id,
                    "lifecycle_event_hook_execution_id": execution_id,
                    "status": status,
                    "attempts": attempts,
                    "error": f"{type(last).__name__}: {last}",
                    "remaining_ms": left_ms,
                }
            )
        )
        raise last


def report_client() -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        read_timeout=REPORT_READ_TIMEOUT_SECONDS,
        connect_timeout=REPORT_CONNECT_TIMEOUT_SECONDS,
        retries={"total_max_attempts": 1, "mode": "standard"},  # report() retries
    )
    return boto3.client("codedeploy", config=config)
