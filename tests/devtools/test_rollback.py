"""`python -m lambda_app release rollback` against moto's CloudFormation, Lambda versions
and aliases. moto's CodeDeploy lists deployments but cannot stop one, nor store a
deployment's AppSpec, so the in-flight case and the deployment history play CodeDeploy
back with botocore's Stubber."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infra_cdk.constructs.deployment import (
    API_FUNCTION_OUTPUT,
    DEPLOYMENT_APPLICATION_OUTPUT,
    DEPLOYMENT_GROUP_OUTPUT,
)
from lambda_app.devtools.cli import main
from lambda_app.devtools.release import ReleaseError
from lambda_app.devtools.rollback import (
    ACTIVE_DEPLOYMENT_STATUSES,
    find_api_deployment,
    roll_back,
    stop_deployments,
)
from tests.fixtures.aws import moto_aws

REGION = "eu-west-1"
STACK = "LambdaApp-prod"
FUNCTION = "lambda-app-prod-api"
APPLICATION = "lambda-app-prod-deploy"
GROUP = "lambda-app-prod-api"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with moto_aws(monkeypatch, REGION):
        yield


def _zip(text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", text)
    return buffer.getvalue()


def deploy(*, versions: int, live: str, weights: dict[str, float] | None = None) -> Any:
    """A stage: the stack's outputs, the API function with `versions` published, `live`."""
    iam = boto3.client("iam")
    role = iam.create_role(RoleName="api", AssumeRolePolicyDocument=json.dumps({"Statement": []}))[
        "Role"
    ]["Arn"]
    lambda_client = boto3.client("lambda")
    lambda_client.create_function(
        FunctionName=FUNCTION,
        Runtime="python3.13",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": _zip("# release 1")},
    )
    for release in range(1, versions + 1):
        lambda_client.update_function_code(FunctionName=FUNCTION, ZipFile=_zip(f"# {release}"))
        lambda_client.publish_version(FunctionName=FUNCTION)
    alias: dict[str, Any] = {"FunctionName": FUNCTION, "Name": "live", "FunctionVersion": live}
    if weights:
        alias["RoutingConfig"] = {"AdditionalVersionWeights": weights}
    lambda_client.create_alias(**alias)
    codedeploy = boto3.client("codedeploy")
    codedeploy.create_application(applicationName=APPLICATION, computePlatform="Lambda")
    codedeploy.create_deployment_group(
        applicationName=APPLICATION, deploymentGroupName=GROUP, serviceRoleArn=role
    )
    template = {
        "Resources": {
            "Marker": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Name": "lambda-app-marker", "Type": "String", "Value": "1"},
            }
        },
        "Outputs": {
            API_FUNCTION_OUTPUT: {"Value": FUNCTION},
            DEPLOYMENT_APPLICATION_OUTPUT: {"Value": APPLICATION},
            DEPLOYMENT_GROUP_OUTPUT: {"Value": GROUP},
        },
    }
    boto3.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(template))
    return lambda_client


def live(lambda_client: Any) -> tuple[str, dict[str, float]]:
    alias = lambda_client.get_alias(FunctionName=FUNCTION, Name="live")
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    return alias["FunctionVersion"], weights


def test_without_a_deployment_to_the_serving_version_it_takes_the_highest_one_below(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: three releases, the third one live, and no CodeDeploy deployment that moved
    # `live` there (moto's group has none: as after an earlier `release rollback`)
    lambda_client = deploy(versions=3, live="3")
    # when
    code = main(["release", "rollback", "--stack", STACK, "--region", REGION])
    # then
    assert code == 0
    assert live(lambda_client) == ("2", {})
    out = capsys.readouterr()
    assert json.loads(out.out) == {
        "function": FUNCTION,
        "alias": "live",
        "from_version": "3",
        "from_weights": {},
        "to_version": "2",
        "rule": "highest-earlier",
        "stopped_deployments": [],
    }
    assert "no CodeDeploy deployment moved live to version 3" in out.err
    assert "now serves version 2 (was 3); the database was not touched" in out.err


def appspec(*, current: str, target: str, form: str) -> str:
    """The AppSpec of a deployment that moves `live` from `current` to `target`: JSON with
    the versions as strings, or YAML with them as numbers."""
    if form == "json":
        resource = {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Name": FUNCTION,
                "Alias": "live",
                "CurrentVersion": current,
                "TargetVersion": target,
            },
        }
        hooks = [{"BeforeAllowTraffic": "lambda-app-prod-hook"}]
        return json.dumps({"version": 0.0, "Resources": [{"ApiLive": resource}], "Hooks": hooks})
    return (
        "version: 0.0\n"
        "Resources:\n"
        "  - ApiLive:\n"
        "      Type: AWS::Lambda::Function\n"
        "      Properties:\n"
        f"        Name: {FUNCTION}\n"
        "        Alias: live\n"
        f"        CurrentVersion: {current}\n"
        f"        TargetVersion: {target}\n"
    )


def deployment_info(
    deployment_id: str, *, minutes: int, creator: str = "CloudFormation"
) -> dict[str, Any]:
    """A succeeded deployment made `minutes` after the first, as BatchGetDeployments
    describes it: its AppSpec named by sha256, its content null (omitted)."""
    return {
        "deploymentId": deployment_id,
        "applicationName": APPLICATION,
        "deploymentGroupName": GROUP,
        "status": "Succeeded",
        "creator": creator,
        "computePlatform": "Lambda",
        "createTime": datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes),
        "revision": {"revisionType": "AppSpecContent", "appSpecContent": {"sha256": deployment_id}},
    }


def play_history(
    stubber: Stubber, history: list[tuple[dict[str, Any], str | None]], *, form: str = "json"
) -> None:
    """CodeDeploy's answers: no deployment in progress, then the succeeded ones, in the
    order listed, and the AppSpecs of those given one (in the order they are read)."""
    group = {"applicationName": APPLICATION, "deploymentGroupName": GROUP}
    ids = [info["deploymentId"] for info, _ in history]
    stubber.add_response(
        "list_deployments",
        {"deployments": []},
        {**group, "includeOnlyStatuses": ACTIVE_DEPLOYMENT_STATUSES},
    )
    stubber.add_response(
        "list_deployments", {"deployments": ids}, {**group, "includeOnlyStatuses": ["Succeeded"]}
    )
    stubber.add_response(
        "batch_get_deployments",
        {"deploymentsInfo": [info for info, _ in history]},
        {"deploymentIds": ids},
    )
    read = sorted(
        ((info, shift) for info, shift in history if shift is not None),
        key=lambda pair: pair[0]["createTime"],
        reverse=True,
    )
    for info, shift in read:
        current, target = shift.split("->")
        revision = {
            "revisionType": "AppSpecContent",
            "appSpecContent": {"sha256": info["deploymentId"]},
        }
        content = appspec(current=current, target=target, form=form)
        stubber.add_response(
            "get_application_revision",
            {
                "applicationName": APPLICATION,
                "revision": {
                    "revisionType": "AppSpecContent",
                    "appSpecContent": {"content": content, "sha256": info["deploymentId"]},
                },
            },
            {"applicationName": APPLICATION, "revision": revision},
        )


def roll_back_with_history(
    lambda_client: Any, history: list[tuple[dict[str, Any], str | None]], *, form: str = "json"
) -> dict[str, Any]:
    """`release rollback` with no shift under way and CodeDeploy's `history` played back."""
    codedeploy = boto3.client("codedeploy")
    with Stubber(codedeploy) as stubber:
        play_history(stubber, history, form=form)
        result = roll_back(
            cloudformation=boto3.client("cloudformation"),
            lambda_client=lambda_client,
            codedeploy=codedeploy,
            stack=STACK,
        )
        stubber.assert_no_pending_responses()
    return result


@pytest.mark.parametrize("form", ["json", "yaml"])
def test_rollback_goes_back_to_the_version_live_served_before_the_serving_one(
    aws: None, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    # given: version 2 served, then a release published version 3 and rolled back (its
    # canary alarmed), and the next one moved live from 2 to 4. CodeDeploy lists its
    # deployments in no particular order.
    lambda_client = deploy(versions=4, live="4")
    history = [
        (deployment_info("d-TWO", minutes=0), None),  # older: never read
        (deployment_info("d-FOUR", minutes=60), "2->4"),
    ]
    # when
    result = roll_back_with_history(lambda_client, history, form=form)
    # then: 2, not 3 (the highest below 4, which never took all traffic)
    assert live(lambda_client) == ("2", {})
    assert result["rule"] == "deployment-history"
    assert "live served it before version 4 moved in (CodeDeploy deployment d-FOUR)" in (
        capsys.readouterr().err
    )


def test_a_deployment_that_moved_live_back_is_not_how_the_serving_version_came_in(
    aws: None,
) -> None:
    # given: 2 -> 3, then 3 -> 4, then CloudFormation rolled that stack update back (a
    # deployment 4 -> 3 of its own): version 3 serves, and 4 is the version refused
    lambda_client = deploy(versions=4, live="3")
    history = [
        (deployment_info("d-BACK", minutes=90, creator="CloudFormationRollback"), None),
        (deployment_info("d-THREE", minutes=0), "2->3"),
        (deployment_info("d-FOUR", minutes=60), "3->4"),
    ]
    roll_back_with_history(lambda_client, history)
    # then: the version that served before 3 first moved in
    assert live(lambda_client) == ("2", {})


def test_a_version_the_history_names_that_is_gone_is_an_error_and_live_stays(aws: None) -> None:
    # given: live moved from 2 to 3, and version 2 has been deleted since
    lambda_client = deploy(versions=3, live="3")
    lambda_client.delete_function(FunctionName=FUNCTION, Qualifier="2")
    history = [(deployment_info("d-THREE", minutes=0), "2->3")]
    with pytest.raises(ReleaseError, match="no longer published: name one with --to"):
        roll_back_with_history(lambda_client, history)
    # then: not the highest one below (1), which the history does not say served
    assert live(lambda_client) == ("3", {})


def test_rollback_to_a_named_version(aws: None) -> None:
    lambda_client = deploy(versions=3, live="3")
    assert main(["release", "rollback", "--stack", STACK, "--to", "1"]) == 0
    assert live(lambda_client) == ("1", {})


def test_an_unknown_version_is_refused_and_live_stays(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    lambda_client = deploy(versions=2, live="2")
    assert main(["release", "rollback", "--stack", STACK, "--to", "9"]) == 1
    assert "has no published version '9' (published: 1, 2)" in capsys.readouterr().err
    assert live(lambda_client) == ("2", {})


def test_without_an_earlier_version_it_says_to_redeploy(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    lambda_client = deploy(versions=1, live="1")
    assert main(["release", "rollback", "--stack", STACK]) == 1
    assert "deploy the previous commit instead" in capsys.readouterr().err
    assert live(lambda_client) == ("1", {})


def test_a_stack_without_traffic_shifting_outputs_is_a_clear_error(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    boto3.client("cloudformation").create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(
            {
                "Resources": {
                    "Marker": {
                        "Type": "AWS::SSM::Parameter",
                        "Properties": {"Name": "m", "Type": "String", "Value": "1"},
                    }
                },
                "Outputs": {"ApiUrl": {"Value": "https://example.com/"}},
            }
        ),
    )
    assert main(["release", "rollback", "--stack", STACK]) == 1
    assert "has no ApiFunctionName, ApiDeploymentApplication, ApiDeploymentGroup output" in (
        capsys.readouterr().err
    )


def test_a_canary_in_flight_is_stopped_and_its_traffic_goes_back(aws: None) -> None:
    # given: a canary sending 10% of requests to version 3 while version 2 serves the rest
    lambda_client = deploy(versions=3, live="2", weights={"3": 0.1})
    codedeploy = boto3.client("codedeploy")
    listing = {
        "applicationName": APPLICATION,
        "deploymentGroupName": GROUP,
        "includeOnlyStatuses": ACTIVE_DEPLOYMENT_STATUSES,
    }
    waits: list[float] = []
    with Stubber(codedeploy) as stubber:
        stubber.add_response("list_deployments", {"deployments": ["d-CANARY"]}, listing)
        stubber.add_response(
            "stop_deployment",
            {"status": "Pending", "statusMessage": "stopping"},
            {"deploymentId": "d-CANARY", "autoRollbackEnabled": True},
        )
        stubber.add_response("list_deployments", {"deployments": ["d-CANARY"]}, listing)
        stubber.add_response("list_deployments", {"deployments": []}, listing)
        # when
        result = roll_back(
            cloudformation=boto3.client("cloudformation"),
            lambda_client=lambda_client,
            codedeploy=codedeploy,
            stack=STACK,
            sleep=waits.append,
        )
        stubber.assert_no_pending_responses()
    # then: the version that served before the canary takes all traffic again
    assert result["stopped_deployments"] == ["d-CANARY"]
    assert result["rule"] == "shift-under-way"
    assert result["from_weights"] == {"3": 0.1}
    assert live(lambda_client) == ("2", {})
    assert len(waits) == 1  # waited for the stopped deployment once, then went on


def test_a_deployment_that_will_not_stop_leaves_live_alone(aws: None) -> None:
    lambda_client = deploy(versions=3, live="2", weights={"3": 0.1})
    codedeploy = boto3.client("codedeploy")
    listing = {
        "applicationName": APPLICATION,
        "deploymentGroupName": GROUP,
        "includeOnlyStatuses": ACTIVE_DEPLOYMENT_STATUSES,
    }
    with Stubber(codedeploy) as stubber:
        stubber.add_response("list_deployments", {"deployments": ["d-STUCK"]}, listing)
        stubber.add_response(
            "stop_deployment",
            {"status": "Pending"},
            {"deploymentId": "d-STUCK", "autoRollbackEnabled": True},
        )
        for _ in range(3):
            stubber.add_response("list_deployments", {"deployments": ["d-STUCK"]}, listing)
        with pytest.raises(ReleaseError, match="still active after 10 s: d-STUCK"):
            stop_deployments(
                codedeploy,
                find_api_deployment(boto3.client("cloudformation"), STACK),
                wait_seconds=10,
                sleep=lambda _: None,
            )
    assert live(lambda_client) == ("2", {"3": 0.1})
