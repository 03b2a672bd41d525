"""How a new API version takes traffic: the release order, the canary, its alarms, the hook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from infra_cdk.constructs.monitoring import MIN_REQUESTS_FOR_RATE
from lambda_app.devtools import rollback
from lambda_app.handlers import pre_traffic
from tests.infra.conftest import Synth, synthesize

XRAY_WRITE_POLICY = "AWSXRayDaemonWriteAccess"


def one(synth: Synth, resource_type: str, prefix: str) -> tuple[str, dict[str, Any]]:
    found = [(k, v) for k, v in synth.of_type(resource_type).items() if k.startswith(prefix)]
    assert len(found) == 1, f"{prefix} ({resource_type}): {[k for k, _ in found]}"
    return found[0]


def props(synth: Synth, resource_type: str, prefix: str) -> dict[str, Any]:
    return dict(one(synth, resource_type, prefix)[1]["Properties"])


def _references(node: Any) -> set[str]:
    """Logical ids that `node` (a part of a resource) refers to with Ref or GetAtt."""
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("Ref"), str):
            found.add(node["Ref"])
        if isinstance(node.get("Fn::GetAtt"), list):
            found.add(node["Fn::GetAtt"][0])
        for value in node.values():
            found |= _references(value)
    elif isinstance(node, list):
        for value in node:
            found |= _references(value)
    return found


def waits_for(synth: Synth, logical_id: str) -> set[str]:
    """Everything CloudFormation creates or updates before `logical_id` (the closure of
    its DependsOn, Ref and GetAtt edges, UpdatePolicy included)."""
    resources = synth.resources
    seen: set[str] = set()
    todo = [logical_id]
    while todo:
        resource = resources[todo.pop()]
        direct = set(resource.get("DependsOn", [])) | _references(
            [resource.get("Properties", {}), resource.get("UpdatePolicy", {})]
        )
        for dependency in direct & set(resources) - seen:
            seen.add(dependency)
            todo.append(dependency)
    return seen


def ids(synth: Synth) -> dict[str, str]:
    return {
        "trigger": one(synth, "Custom::Trigger", "MigrationsRun")[0],
        "function": one(synth, "AWS::Lambda::Function", "ApiFunction")[0],
        "version": one(synth, "AWS::Lambda::Version", "ApiFunctionCurrentVersion")[0],
        "hook": one(synth, "AWS::Lambda::Function", "ApiDeploymentPreTrafficHook")[0],
        "hook_policy": one(synth, "AWS::IAM::Policy", "ApiDeploymentPreTrafficHook")[0],
        "group": one(synth, "AWS::CodeDeploy::DeploymentGroup", "ApiDeploymentGroup")[0],
        "alias": one(synth, "AWS::Lambda::Alias", "ApiLive")[0],
    }


def test_a_release_migrates_then_publishes_then_checks_then_shifts(synth: Synth) -> None:
    resource = ids(synth)
    # 1. the migrations run before the new code (and so its version) exists
    assert resource["trigger"] in synth.resources[resource["function"]]["DependsOn"]
    assert resource["trigger"] in waits_for(synth, resource["version"])
    # 2. the hook is pointed at the new version, with the right to invoke it
    assert {resource["version"], resource["hook_policy"]} <= waits_for(synth, resource["hook"])
    # 3.+4. only then does the alias update start the deployment, which runs the hook first
    alias = synth.resources[resource["alias"]]
    assert {resource["hook"], resource["group"]} <= set(alias["DependsOn"])
    assert alias["Properties"]["FunctionVersion"] == {
        "Fn::GetAtt": [resource["version"], "Version"]
    }
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update["BeforeAllowTrafficHook"] == {"Ref": resource["hook"]}
    assert update["DeploymentGroupName"] == {"Ref": resource["group"]}
    assert "AfterAllowTrafficHook" not in update
    # and nothing about the migrations waits for the new API version (no cycle back)
    assert resource["version"] not in waits_for(synth, resource["trigger"])


def test_no_resource_waits_for_itself(synth: Synth) -> None:
    # CloudFormation refuses a template with a dependency cycle, at deploy time only.
    in_a_cycle = [name for name in synth.resources if name in waits_for(synth, name)]
    assert in_a_cycle == []


def test_prod_shifts_a_canary_and_dev_all_at_once(dev: Synth, prod: Synth) -> None:
    config = "DeploymentConfigName"
    assert props(prod, "AWS::CodeDeploy::DeploymentGroup", "ApiDeploymentGroup")[config] == (
        "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    )
    assert props(dev, "AWS::CodeDeploy::DeploymentGroup", "ApiDeploymentGroup")[config] == (
        "CodeDeployDefault.LambdaAllAtOnce"
    )


def test_a_failed_stopped_or_alarming_deployment_rolls_back(synth: Synth) -> None:
    group = props(synth, "AWS::CodeDeploy::DeploymentGroup", "ApiDeploymentGroup")
    assert group["AutoRollbackConfiguration"]["Enabled"] is True
    assert set(group["AutoRollbackConfiguration"]["Events"]) == {
        "DEPLOYMENT_FAILURE",
        "DEPLOYMENT_STOP_ON_REQUEST",
        "DEPLOYMENT_STOP_ON_ALARM",
    }
    alarms = {alarm["Name"]["Ref"] for alarm in group["AlarmConfiguration"]["Alarms"]}
    assert alarms == set(synth.of_type("AWS::CloudWatch::Alarm")) & {
        k for k in synth.resources if k.startswith("ApiDeployment")
    }
    assert len(alarms) == 3


def test_deployment_alarms_ignore_lets_one_deploy_shift_without_its_alarms(
    _no_aws_credentials: None, tmp_path: Path, dev: Synth
) -> None:
    # given a hotfix deploy while the serving version fails, so the API-wide 5xx rate alarms
    hotfix = synthesize("dev", tmp_path, deployment_alarms="ignore")
    assert hotfix.error is None
    # then CodeDeploy reads none of the group's alarms in that deploy...
    group = props(hotfix, "AWS::CodeDeploy::DeploymentGroup", "ApiDeploymentGroup")
    watched = props(dev, "AWS::CodeDeploy::DeploymentGroup", "ApiDeploymentGroup")
    assert group["AlarmConfiguration"]["Enabled"] is False
    assert watched["AlarmConfiguration"]["Enabled"] is True
    # ...nor rolls back on them (an alarm rollback with alarms switched off would be a
    # configuration CodeDeploy can't act on)...
    events = set(group["AutoRollbackConfiguration"]["Events"])
    assert set(watched["AutoRollbackConfiguration"]["Events"]) - events == {
        "DEPLOYMENT_STOP_ON_ALARM"
    }
    # ...and everything else stays: the alarms themselves, rollback on a failure, the hook
    assert group["AlarmConfiguration"]["Alarms"] == watched["AlarmConfiguration"]["Alarms"]
    assert events == {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST"}
    (alias,) = hotfix.of_type("AWS::Lambda::Alias").values()
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update["BeforeAllowTrafficHook"] == {"Ref": ids(hotfix)["hook"]}


def test_the_alarms_watch_the_new_version(synth: Synth) -> None:
    resource = ids(synth)
    # API Gateway invokes the alias: Lambda publishes those requests under the alias
    # (Resource=<function>:live) with the version that ran them (ExecutedVersion).
    alias_name = props(synth, "AWS::Lambda::Alias", "ApiLive")["Name"]
    alias_dimension = {
        "Name": "Resource",
        "Value": {"Fn::Join": ["", [{"Ref": resource["function"]}, f":{alias_name}"]]},
    }
    version_dimension = {
        "Name": "ExecutedVersion",
        "Value": {"Fn::GetAtt": [resource["version"], "Version"]},
    }
    errors = props(synth, "AWS::CloudWatch::Alarm", "ApiDeploymentNewVersionErrors")
    assert errors["MetricName"] == "Errors" and errors["Threshold"] == 1
    function_dimension = {"Name": "FunctionName", "Value": {"Ref": resource["function"]}}
    assert errors["Namespace"] == "AWS/Lambda"
    assert sorted(errors["Dimensions"], key=str) == sorted(
        [function_dimension, alias_dimension, version_dimension], key=str
    )
    duration = props(synth, "AWS::CloudWatch::Alarm", "ApiDeploymentNewVersionDuration")
    assert duration["MetricName"] == "Duration" and duration["ExtendedStatistic"] == "p99"
    assert duration["Dimensions"] == errors["Dimensions"]
    assert (
        duration["Threshold"]
        < props(synth, "AWS::Lambda::Function", "ApiFunction")["Timeout"] * 1000
    )
    for alarm in (errors, duration):
        assert alarm["TreatMissingData"] == "notBreaching"


def test_the_5xx_alarm_is_a_rate_of_the_http_apis_requests_with_a_traffic_floor(
    synth: Synth,
) -> None:
    rate = props(synth, "AWS::CloudWatch::Alarm", "ApiDeploymentServerErrorRate")
    by_id = {query["Id"]: query for query in rate["Metrics"]}
    # One 503 in a quiet minute does not roll a canary back: below the floor the rate is 0,
    # as the monitoring alarm reads it.
    assert by_id["expr_1"]["Expression"] == (
        f"IF(requests >= {MIN_REQUESTS_FOR_RATE}, 100 * errors / requests, 0)"
    )
    assert MIN_REQUESTS_FOR_RATE > 1
    monitoring = props(synth, "AWS::CloudWatch::Alarm", "MonitoringApi5xxRate")
    assert rate["Metrics"] == monitoring["Metrics"]
    api_id = {
        "Name": "ApiId",
        "Value": {"Ref": one(synth, "AWS::ApiGatewayV2::Api", "ApiHttpApi")[0]},
    }
    for query_id, metric_name in (("errors", "5xx"), ("requests", "Count")):
        metric = by_id[query_id]["MetricStat"]["Metric"]
        assert metric["Namespace"] == "AWS/ApiGateway" and metric["MetricName"] == metric_name
        assert metric["Dimensions"] == [api_id]
        assert by_id[query_id]["ReturnData"] is False
    assert rate["Threshold"] == 5


def test_the_hook_is_a_small_function_outside_the_vpc_aimed_at_the_new_version(
    synth: Synth,
) -> None:
    resource = ids(synth)
    hook = props(synth, "AWS::Lambda::Function", "ApiDeploymentPreTrafficHook")
    api = props(synth, "AWS::Lambda::Function", "ApiFunction")
    assert hook["Handler"] == "lambda_app.handlers.pre_traffic.handler"
    assert hook["Code"] == api["Code"]  # the API's own asset
    assert hook["MemorySize"] <= 256 and "VpcConfig" not in hook
    assert hook["Environment"]["Variables"] == {
        "TARGET_FUNCTION_NAME": {"Ref": resource["function"]},
        "TARGET_FUNCTION_VERSION": {"Fn::GetAtt": [resource["version"], "Version"]},
    }
    assert hook["LoggingConfig"]["LogGroup"]["Ref"].startswith("ApiDeploymentPreTrafficHookLogs")


def test_lambda_never_runs_the_hook_twice_for_one_lifecycle_event(synth: Synth) -> None:
    # CodeDeploy invokes the hook asynchronously: Lambda's default two retries would run
    # the checks again after a failure (and report twice), past the hook's own timeout.
    hook_id = one(synth, "AWS::Lambda::Function", "ApiDeploymentPreTrafficHook")[0]
    configs = [
        c["Properties"]
        for c in synth.of_type("AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": hook_id}
    ]
    assert configs == [
        {
            "FunctionName": {"Ref": hook_id},
            "Qualifier": "$LATEST",  # CodeDeploy invokes the unqualified function
            "MaximumRetryAttempts": 0,
            "MaximumEventAgeInSeconds": 3600,  # CodeDeploy waits an hour at most
        }
    ]
    hook = props(synth, "AWS::Lambda::Function", "ApiDeploymentPreTrafficHook")
    assert (
        hook["Timeout"] * 1000
        >= (pre_traffic.INVOKE_WORST_CASE_MS + pre_traffic.REPORT_MARGIN_MS) + 15_000
    )  # one full-length invoke, the report, and a cold start


def test_the_hook_may_invoke_the_new_version_and_report_to_its_group_only(synth: Synth) -> None:
    resource = ids(synth)
    statements = props(synth, "AWS::IAM::Policy", "ApiDeploymentPreTrafficHook")["PolicyDocument"][
        "Statement"
    ]
    group_arn = {
        "Fn::Join": [
            "",
            [
                Match.string_like_regexp("arn:.*:codedeploy:.*:deploymentgroup:"),
                {"Ref": one(synth, "AWS::CodeDeploy::Application", "ApiDeploymentGroup")[0]},
                "/",
                {"Ref": resource["group"]},
            ],
        ]
    }
    Template.from_json(synth.template).has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": [
                    {
                        "Action": "lambda:InvokeFunction",
                        "Effect": "Allow",
                        "Resource": {"Ref": resource["version"]},  # the qualified ARN
                    },
                    {
                        "Action": "codedeploy:PutLifecycleEventHookExecutionStatus",
                        "Effect": "Allow",
                        "Resource": group_arn,
                    },
                ]
            }
        },
    )
    assert len(statements) == 2
    # CodeDeploy may invoke the hook itself (unqualified), nothing else of ours.
    codedeploy_policy = props(synth, "AWS::IAM::Policy", "ApiDeploymentGroupServiceRole")
    assert codedeploy_policy["PolicyDocument"]["Statement"] == [
        {
            "Action": "lambda:InvokeFunction",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [resource["hook"], "Arn"]},
        }
    ]


def test_superseded_api_versions_are_kept_and_rolled_back_ones_are_not(synth: Synth) -> None:
    _, version = one(synth, "AWS::Lambda::Version", "ApiFunctionCurrentVersion")
    # Kept when a later release removes it from the stack, so `release rollback` has it;
    # deleted when the update that made it rolls back (it never took traffic).
    assert version["DeletionPolicy"] == "RetainExceptOnCreate"
    # Replaced in an update that succeeds: the old version is kept. (A replacement made by
    # an update that rolls back is deleted by the rollback itself; RetainExceptOnCreate is
    # no UpdateReplacePolicy value.)
    assert version["UpdateReplacePolicy"] == "Retain"


def test_the_outputs_are_the_ones_release_rollback_reads(synth: Synth) -> None:
    resource = ids(synth)
    outputs = synth.template["Outputs"]
    assert outputs[rollback.API_FUNCTION_OUTPUT_KEY]["Value"] == {"Ref": resource["function"]}
    assert outputs[rollback.DEPLOYMENT_GROUP_OUTPUT_KEY]["Value"] == {"Ref": resource["group"]}
    assert rollback.DEPLOYMENT_APPLICATION_OUTPUT_KEY in outputs


@pytest.mark.parametrize("function", ["ApiFunction", "MigrationsFunction"])
def test_functions_trace_actively_with_xrays_write_policy(synth: Synth, function: str) -> None:
    logical_id, resource = one(synth, "AWS::Lambda::Function", function)
    assert resource["Properties"]["TracingConfig"] == {"Mode": "Active"}
    role_id = resource["Properties"]["Role"]["Fn::GetAtt"][0]
    managed = synth.resources[role_id]["Properties"]["ManagedPolicyArns"]
    assert {
        "Fn::Join": [
            "",
            ["arn:", {"Ref": "AWS::Partition"}, f":iam::aws:policy/{XRAY_WRITE_POLICY}"],
        ]
    } in managed
    assert logical_id
