"""`python -m lambda_app release`: run the deployed migration Lambda, once, and wait for it.

    python -m lambda_app release --stack NAME      # the function named in the stack outputs
    python -m lambda_app release --function NAME   # or the function itself
        [--region REGION] [--action upgrade|downgrade|current|history|check] [--revision REV]

The invocation is synchronous, with a read timeout longer than Lambda's 15-minute maximum
and no retries: botocore (like the AWS CLI) retries a timed-out read by default, which
would start the same migration a second time while the first one still runs. TCP
keepalive probes from 60 s idle keep NAT gateways from forgetting the silent connection.

Exit codes: 0 the migration ran and reported ok; 3 the function failed (FunctionError,
error payload printed to stderr); 4 the function ran but reported ok=false (e.g. `check`
found drift); 1 the release itself failed (stack or function not found, AWS error, no
answer or the connection lost: the migration may still be running).

    python -m lambda_app release rollback --stack NAME [--to VERSION] [--region REGION]

points the API's `live` alias back at the version it served before the current one moved
in (or at VERSION), after stopping any deployment still shifting traffic. It never touches
the database: the schema stays as the last migration left it.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from typing import Any

from lambda_app.devtools.tcp_keepalive import send_early_probes
from lambda_app.migrate.actions import (
    ACTIONS,
    DEFAULT_ACTION,
    LAMBDA_MAX_RUN_SECONDS,
    MigrationRequest,
)

MIGRATION_OUTPUT_KEY = "MigrationFunctionName"
READ_TIMEOUT_SECONDS = LAMBDA_MAX_RUN_SECONDS + 60  # the whole run, plus start-up slack
CONNECT_TIMEOUT_SECONDS = 10

EXIT_OK = 0
EXIT_FUNCTION_ERROR = 3
EXIT_NOT_OK = 4


class ReleaseError(RuntimeError):
    pass


def add_release_command(subparsers: Any) -> Any:
    """Add `release`; returns its subcommands, for `release rollback`."""
    release = subparsers.add_parser(
        "release",
        help="invoke the deployed migration Lambda and wait for its result",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Required unless a subcommand (rollback) is given: checked in run_release.
    target = release.add_mutually_exclusive_group()
    target.add_argument("--stack", help="CloudFormation stack with a MigrationFunctionName output")
    target.add_argument("--function", help="name or ARN of the migration function")
    release.add_argument("--region", help="AWS region (default: from the AWS configuration)")
    release.add_argument("--action", choices=ACTIONS, default=DEFAULT_ACTION)
    release.add_argument("--revision", help="target revision (required for downgrade)")
    release.set_defaults(func=run_release, release_parser=release)

    # `release rollback` is added by lambda_app.devtools.rollback.
    return release.add_subparsers(dest="release_command", metavar="{rollback}")


def invoke_config() -> Any:
    """botocore settings for a synchronous invoke that may last the full 15 minutes."""
    from botocore.config import Config

    return Config(
        read_timeout=READ_TIMEOUT_SECONDS,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        # No retries: a retried invoke runs the migration again.
        retries={"max_attempts": 0, "mode": "standard"},
        # SO_KEEPALIVE, for the silent minutes while the function works; the probes' timing
        # is set by tcp_keepalive.send_early_probes, which botocore has no option for.
        tcp_keepalive=True,
    )


def lambda_client(region: str | None) -> Any:
    import boto3  # only on this path: the Lambda bundle does not need it at import

    client = boto3.client("lambda", region_name=region, config=invoke_config())
    send_early_probes(client)
    return client


def find_migration_function(cloudformation: Any, stack: str) -> str:
    """The migration function's name from the stack outputs."""
    stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    outputs: dict[str, str] = {
        out["OutputKey"]: out["OutputValue"] for out in stacks[0].get("Outputs", [])
    }
    if MIGRATION_OUTPUT_KEY in outputs:
        return outputs[MIGRATION_OUTPUT_KEY]
    # CDK may prefix output keys with the construct path (e.g. MigrationsMigrationFunctionName).
    matches = sorted(key for key in outputs if key.endswith(MIGRATION_OUTPUT_KEY))
    if len(matches) == 1:
        return outputs[matches[0]]
    if matches:
        raise ReleaseError(f"stack {stack!r} has several migration outputs: {', '.join(matches)}")
    raise ReleaseError(
        f"stack {stack!r} has no {MIGRATION_OUTPUT_KEY} output "
        f"(outputs: {', '.join(sorted(outputs)) or 'none'})"
    )


def invoke_migration(client: Any, function: str, event: dict[str, Any]) -> int:
    """Invoke synchronously, print the result (or the error), return the exit code."""
    response = client.invoke(
        FunctionName=function,
        InvocationType="RequestResponse",
        LogType="Tail",
        Payload=json.dumps(event).encode(),
    )
    raw = response["Payload"].read().decode("utf-8", errors="replace")
    try:
        payload: Any = json.loads(raw)
    except ValueError:
        payload = raw
    if response.get("FunctionError"):
        print(
            f"migration function {function} failed ({response['FunctionError']}):", file=sys.stderr
        )
        print(json.dumps(payload, indent=2), file=sys.stderr)
        log_tail = response.get("LogResult")
        if log_tail:
            print("last log lines:", file=sys.stderr)
            print(base64.b64decode(log_tail).decode("utf-8", errors="replace"), file=sys.stderr)
        return EXIT_FUNCTION_ERROR
    print(json.dumps(payload, indent=2))
    if not (isinstance(payload, dict) and payload.get("ok") is True):
        print("the migration function reported ok=false", file=sys.stderr)
        return EXIT_NOT_OK
    return EXIT_OK


def run_release(args: argparse.Namespace) -> int:
    import boto3
    from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

    if not (args.stack or args.function):
        args.release_parser.error("one of the arguments --stack --function is required")

    # The migration function's own rules: a bad request fails here, before any AWS call.
    request = MigrationRequest(action=args.action, revision=args.revision)
    function = args.function
    if args.stack:
        cloudformation = boto3.client("cloudformation", region_name=args.region)
        function = find_migration_function(cloudformation, args.stack)
    print(f"invoking {function} ({args.action}) and waiting for it to finish...", file=sys.stderr)
    try:
        return invoke_migration(lambda_client(args.region), function, request.to_event())
    except ReadTimeoutError:
        raise ReleaseError(
            f"no answer from {function} (the read timeout is {READ_TIMEOUT_SECONDS} s, and "
            "unanswered keepalive probes end the wait sooner); it may still be running: "
            "check its logs before starting another release"
        ) from None
    except ConnectionClosedError:
        # The path went away mid-wait (the keepalive probes went unanswered, or a NAT
        # reset the flow): the invoke was sent, so the migration may be running.
        raise ReleaseError(
            f"the connection to Lambda was lost while waiting for {function}; it may still "
            "be running: check its logs before starting another release"
        ) from None
