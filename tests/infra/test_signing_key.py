"""The JWT signing key's rotation: a 30-day schedule, a small function, least privilege."""

from __future__ import annotations

from typing import Any

from tests.infra.conftest import Synth

ROTATION = "JwtSecretRotation"


def one(synth: Synth, resource_type: str, prefix: str) -> tuple[str, dict[str, Any]]:
    found = [(k, v) for k, v in synth.of_type(resource_type).items() if k.startswith(prefix)]
    assert len(found) == 1, f"{prefix} ({resource_type}): {[k for k, _ in found]}"
    return found[0]


def props(synth: Synth, resource_type: str, prefix: str) -> dict[str, Any]:
    properties: dict[str, Any] = one(synth, resource_type, prefix)[1]["Properties"]
    return properties


def ref_of(synth: Synth, resource_type: str, prefix: str) -> dict[str, str]:
    return {"Ref": one(synth, resource_type, prefix)[0]}


def _role_statements(synth: Synth) -> list[dict[str, Any]]:
    policy = props(synth, "AWS::IAM::Policy", f"{ROTATION}FunctionServiceRoleDefaultPolicy")
    statements: list[dict[str, Any]] = policy["PolicyDocument"]["Statement"]
    return statements


def test_the_jwt_secret_rotates_every_30_days_with_its_function(synth: Synth) -> None:
    schedule = props(synth, "AWS::SecretsManager::RotationSchedule", ROTATION)
    function_id = one(synth, "AWS::Lambda::Function", f"{ROTATION}Function")[0]
    assert schedule["SecretId"] == ref_of(synth, "AWS::SecretsManager::Secret", "JwtSecret")
    assert schedule["RotationLambdaARN"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert schedule["RotationRules"] == {"AutomaticallyAfterDays": 30}
    # The first rotation waits for the schedule, when every API version reads key rings.
    assert schedule["RotateImmediatelyOnUpdate"] is False
    function = props(synth, "AWS::Lambda::Function", f"{ROTATION}Function")
    assert function["Handler"] == "lambda_app.handlers.rotate_signing_key.handler"
    assert function["Code"] == props(synth, "AWS::Lambda::Function", "ApiFunction")["Code"]
    assert "Environment" not in function  # the secret's ARN comes in each event
    assert function["VpcConfig"]["SubnetIds"]


def test_rotation_may_touch_that_one_secret_only(synth: Synth) -> None:
    jwt = ref_of(synth, "AWS::SecretsManager::Secret", "JwtSecret")
    secret_statements = [
        s for s in _role_statements(synth) if str(s["Action"]).count("secretsmanager:")
    ]
    assert secret_statements == [
        {
            "Action": [
                "secretsmanager:DescribeSecret",
                "secretsmanager:GetSecretValue",
                "secretsmanager:PutSecretValue",
                "secretsmanager:UpdateSecretVersionStage",
            ],
            "Effect": "Allow",
            "Resource": jwt,
        }
    ]
    # No GetRandomPassword on "*" (CDK's add_rotation_schedule would add it): keys come
    # from the function's own `secrets` module.
    assert all(s["Resource"] != "*" for s in _role_statements(synth) if "xray" not in str(s))


def test_rotation_uses_the_key_through_secrets_manager_only(synth: Synth) -> None:
    role = one(synth, "AWS::IAM::Role", f"{ROTATION}FunctionServiceRole")[0]
    (key,) = synth.of_type("AWS::KMS::Key").values()
    statements = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s["Principal"].get("AWS") == {"Fn::GetAtt": [role, "Arn"]}
    ]
    assert statements == [
        {
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Condition": {
                "StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}
            },
            "Effect": "Allow",
            "Principal": {"AWS": {"Fn::GetAtt": [role, "Arn"]}},
            "Resource": "*",
        }
    ]


def test_only_secrets_manager_of_this_account_may_invoke_it(synth: Synth) -> None:
    function_id = one(synth, "AWS::Lambda::Function", f"{ROTATION}Function")[0]
    permissions = [
        p["Properties"]
        for p in synth.of_type("AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    assert permissions == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [function_id, "Arn"]},
            "Principal": "secretsmanager.amazonaws.com",
            "SourceAccount": "123456789012",
        }
    ]


def test_the_jwt_secret_is_no_longer_acknowledged_as_unrotated(synth: Synth) -> None:
    jwt_id = ref_of(synth, "AWS::SecretsManager::Secret", "JwtSecret")["Ref"]
    rules = synth.resources[jwt_id].get("Metadata", {}).get("cdk_nag", {})
    assert "AwsSolutions-SMG4" not in str(rules)


def test_the_schedule_waits_for_the_path_to_secrets_manager(synth: Synth) -> None:
    # Secrets Manager tests the rotation function as soon as the schedule exists: the
    # function must reach the endpoint by then.
    schedule_id, schedule = one(synth, "AWS::SecretsManager::RotationSchedule", ROTATION)
    waits_for = set(schedule["DependsOn"])
    endpoint = one(synth, "AWS::EC2::VPCEndpoint", "NetworkVpcSecretsManager")[0]
    endpoint_group = one(synth, "AWS::EC2::SecurityGroup", "NetworkVpcSecretsManager")[0]
    rotation_group = one(synth, "AWS::EC2::SecurityGroup", f"{ROTATION}SecurityGroup")[0]

    def rules(resource_type: str, group: str, peer_property: str, peer: str) -> set[str]:
        return {
            logical_id
            for logical_id, rule in synth.of_type(resource_type).items()
            if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [group, "GroupId"]}
            and rule["Properties"][peer_property] == {"Fn::GetAtt": [peer, "GroupId"]}
            and rule["Properties"]["FromPort"] == 443
        }

    ingress = rules(
        "AWS::EC2::SecurityGroupIngress", endpoint_group, "SourceSecurityGroupId", rotation_group
    )
    egress = rules(
        "AWS::EC2::SecurityGroupEgress",
        rotation_group,
        "DestinationSecurityGroupId",
        endpoint_group,
    )
    assert len(ingress) == 1 and len(egress) == 1, schedule_id
    assert {endpoint, endpoint_group, rotation_group} | ingress | egress <= waits_for
