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


def test_rotation_runs_outside_the_vpc_with_no_network_of_its_own(synth: Synth) -> None:
    # A VPC function idle for weeks loses its network interface, and the monthly
    # invocation that finds it gone fails while the function is Pending again.
    function = props(synth, "AWS::Lambda::Function", f"{ROTATION}Function")
    assert "VpcConfig" not in function
    assert function["TracingConfig"] == {"Mode": "Active"}
    assert not [k for k in synth.of_type("AWS::EC2::SecurityGroup") if k.startswith(ROTATION)]
    role = props(synth, "AWS::IAM::Role", f"{ROTATION}FunctionServiceRole")
    assert "AWSLambdaVPCAccessExecutionRole" not in str(role["ManagedPolicyArns"])


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


def test_the_schedule_waits_for_the_function_and_its_invoke_permission(synth: Synth) -> None:
    # Secrets Manager tests the rotation function as soon as the schedule exists.
    _, schedule = one(synth, "AWS::SecretsManager::RotationSchedule", ROTATION)
    waits_for = set(schedule["DependsOn"])
    function_id = one(synth, "AWS::Lambda::Function", f"{ROTATION}Function")[0]
    permission_id = one(synth, "AWS::Lambda::Permission", f"{ROTATION}FunctionSecretsManager")[0]
    assert {function_id, permission_id} <= waits_for
