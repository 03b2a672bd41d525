"""`python -m lambda_app release rollback`: point the API's `live` alias back at an earlier
version. It never touches the database: a rollback cannot undo a schema change, which is
why migrations expand first and contract in a later release (docs/migrations-and-releases.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lambda_app.devtools.deploy_history import shift_to
from lambda_app.devtools.release import EXIT_OK, ReleaseError

API_FUNCTION_OUTPUT_KEY = "ApiFunctionName"
DEPLOYMENT_APPLICATION_OUTPUT_KEY = "ApiDeploymentApplication"
DEPLOYMENT_GROUP_OUTPUT_KEY = "ApiDeploymentGroup"
LIVE_ALIAS = "live"
ACTIVE_DEPLOYMENT_STATUSES = ["Created", "Queued", "InProgress", "Ready"]
STOP_WAIT_SECONDS = 300
STOP_POLL_SECONDS = 5


def add_rollback_command(commands: Any) -> None:
    rollback = commands.add_parser(
        "rollback",
        help="point the API's live alias back at the previous version (the schema stays)",
        description=(
            "Stop any deployment of the API still in progress (CodeDeploy rolls its traffic "
            "shift back), then point the `live` alias at the version it served before the "
            "current one moved in (CodeDeploy's history; else the highest published version "
            "below it), or at --to VERSION. The database is not touched."
        ),
    )
    rollback.add_argument("--stack", required=True, help="the stage's CloudFormation stack")
    rollback.add_argument("--to", dest="to_version", help="a published version number")
    rollback.add_argument("--region", help="AWS region (default: from the AWS configuration)")
    rollback.set_defaults(func=run_rollback)


@dataclass(frozen=True)
class ApiDeployment:
    function: str
    application: str
    group: str


def _stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    return {out["OutputKey"]: out["OutputValue"] for out in stacks[0].get("Outputs", [])}


def find_api_deployment(cloudformation: Any, stack: str) -> ApiDeployment:
    """The API function and its CodeDeploy deployment group, from the stack outputs."""
    outputs = _stack_outputs(cloudformation, stack)
    keys = (API_FUNCTION_OUTPUT_KEY, DEPLOYMENT_APPLICATION_OUTPUT_KEY, DEPLOYMENT_GROUP_OUTPUT_KEY)
    missing = [key for key in keys if key not in outputs]
    if missing:
        raise ReleaseError(
            f"stack {stack!r} has no {', '.join(missing)} output (a stack deployed before "
            "traffic shifting? outputs: " + (", ".join(sorted(outputs)) or "none") + ")"
        )
    return ApiDeployment(*(outputs[key] for key in keys))


def _active_deployments(codedeploy: Any, deployment: ApiDeployment) -> list[str]:
    found: list[str] = []
    for page in codedeploy.get_paginator("list_deployments").paginate(
        applicationName=deployment.application,
        deploymentGroupName=deployment.group,
        includeOnlyStatuses=ACTIVE_DEPLOYMENT_STATUSES,
    ):
        found += page.get("deployments", [])
    return found


def stop_deployments(
    codedeploy: Any,
    deployment: ApiDeployment,
    *,
    wait_seconds: float = STOP_WAIT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """Stop every active deployment of the group (each rolls its shift back), and wait
    until none is active, so that none moves the alias after we do."""
    stopped = []
    for deployment_id in _active_deployments(codedeploy, deployment):
        codedeploy.stop_deployment(deploymentId=deployment_id, autoRollbackEnabled=True)
        print(
            f"stopped deployment {deployment_id} (CodeDeploy rolls its traffic back)",
            file=sys.stderr,
        )
        stopped.append(deployment_id)
    waited = 0.0
    while stopped and (still := _active_deployments(codedeploy, deployment)):
        if waited >= wait_seconds:
            raise ReleaseError(
                f"deployments still active after {wait_seconds:.0f} s: {', '.join(still)}; "
                "the alias was not changed"
            )
        sleep(STOP_POLL_SECONDS)
        waited += STOP_POLL_SECONDS
    return stopped


def _published_versions(lambda_client: Any, function: str) -> list[int]:
    versions: list[int] = []
    for page in lambda_client.get_paginator("list_versions_by_function").paginate(
        FunctionName=function
    ):
        versions += [int(v["Version"]) for v in page["Versions"] if v["Version"].isdigit()]
    return sorted(versions)


@dataclass(frozen=True)
class Target:
    version: str
    # The rule that chose it: named, shift-under-way, deployment-history, highest-earlier.
    rule: str
    reason: str


def _rollback_target(
    lambda_client: Any,
    codedeploy: Any,
    deployment: ApiDeployment,
    alias: dict[str, Any],
    *,
    to_version: str | None,
    shift_stopped: bool,
) -> Target:
    function = deployment.function
    published = _published_versions(lambda_client, function)
    if to_version is not None:
        if not to_version.isdigit() or int(to_version) not in published:
            raise ReleaseError(
                f"{function} has no published version {to_version!r} "
                f"(published: {', '.join(map(str, published)) or 'none'})"
            )
        return Target(to_version, "named", "named with --to")
    serving = str(alias["FunctionVersion"])
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    if weights or shift_stopped:
        # A shift was under way: the alias's own version is the one that served before it.
        return Target(serving, "shift-under-way", "it served while the shift was under way")
    # The version `live` served before this one moved in. Not simply the highest one below
    # it: a version published for a release that was then rolled back never served.
    shift = shift_to(
        codedeploy,
        application=deployment.application,
        group=deployment.group,
        function=function,
        alias=LIVE_ALIAS,
        version=serving,
    )
    if shift is not None:
        if not shift.from_version.isdigit() or int(shift.from_version) not in published:
            raise ReleaseError(
                f"version {shift.from_version} served before version {serving} (CodeDeploy "
                f"deployment {shift.deployment_id}) but is no longer published: name one "
                "with --to"
            )
        return Target(
            shift.from_version,
            "deployment-history",
            f"{LIVE_ALIAS} served it before version {serving} moved in (CodeDeploy "
            f"deployment {shift.deployment_id})",
        )
    earlier = [v for v in published if serving.isdigit() and v < int(serving)]
    if not earlier:
        raise ReleaseError(
            f"{function}:{LIVE_ALIAS} serves version {serving} and no earlier version is "
            "published: deploy the previous commit instead"
        )
    return Target(
        str(earlier[-1]),
        "highest-earlier",
        f"no CodeDeploy deployment moved {LIVE_ALIAS} to version {serving} (an earlier "
        "rollback did?), so it is the highest published version below",
    )


def roll_back(
    *,
    cloudformation: Any,
    lambda_client: Any,
    codedeploy: Any,
    stack: str,
    to_version: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Point `live` at the previous (or the given) version; returns what was done."""
    deployment = find_api_deployment(cloudformation, stack)
    stopped = stop_deployments(codedeploy, deployment, sleep=sleep)
    # Read after the stops: a stopped deployment has moved the alias back by now.
    alias = lambda_client.get_alias(FunctionName=deployment.function, Name=LIVE_ALIAS)
    target = _rollback_target(
        lambda_client,
        codedeploy,
        deployment,
        alias,
        to_version=to_version,
        shift_stopped=bool(stopped),
    )
    print(f"rolling back to version {target.version}: {target.reason}", file=sys.stderr)
    lambda_client.update_alias(
        FunctionName=deployment.function,
        Name=LIVE_ALIAS,
        FunctionVersion=target.version,
        RoutingConfig={"AdditionalVersionWeights": {}},  # all traffic to the target
    )
    result = {
        "function": deployment.function,
        "alias": LIVE_ALIAS,
        "from_version": alias["FunctionVersion"],
        "from_weights": (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {},
        "to_version": target.version,
        "rule": target.rule,
        "stopped_deployments": stopped,
    }
    print(
        f"{deployment.function}:{LIVE_ALIAS} now serves version {target.version} "
        f"(was {alias['FunctionVersion']}); the database was not touched",
        file=sys.stderr,
    )
    return result


def run_rollback(args: argparse.Namespace) -> int:
    import boto3

    result = roll_back(
        cloudformation=boto3.client("cloudformation", region_name=args.region),
        lambda_client=boto3.client("lambda", region_name=args.region),
        codedeploy=boto3.client("codedeploy", region_name=args.region),
        stack=args.stack,
        to_version=args.to_version,
    )
    print(json.dumps(result, indent=2))
    return EXIT_OK
