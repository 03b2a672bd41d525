"""What the stack deploys: the properties that keep it secure, observable and releasable."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from lambda_app.db.engine import KEPT_CONNECTION_RECYCLE_SECONDS
from lambda_app.devtools.gateway_events import API_TIMEOUT_SECONDS as LOCAL_API_TIMEOUT_SECONDS
from lambda_app.migrate.deadline import MIGRATION_FUNCTION_TIMEOUT_SECONDS
from lambda_app.workload import API_ROLE
from tests.infra.conftest import PROD_OPTIONS, ROOT, Synth, synthesize
from tests.infra.template_checks import endpoint_policy_problems, operations_the_code_calls

APP_FUNCTIONS = ("ApiFunction", "MigrationsFunction")


def one(synth: Synth, resource_type: str, prefix: str) -> tuple[str, dict[str, Any]]:
    found = [(k, v) for k, v in synth.of_type(resource_type).items() if k.startswith(prefix)]
    assert len(found) == 1, f"{prefix} ({resource_type}): {[k for k, _ in found]}"
    return found[0]


def props(synth: Synth, resource_type: str, prefix: str) -> dict[str, Any]:
    return one(synth, resource_type, prefix)[1]["Properties"]


def ref_of(synth: Synth, resource_type: str, prefix: str) -> dict[str, str]:
    return {"Ref": one(synth, resource_type, prefix)[0]}


def db_secret_ref(synth: Synth) -> dict[str, str]:
    # The generated secret, through its attachment to the instance (Ref: the secret ARN).
    return ref_of(synth, "AWS::SecretsManager::SecretTargetAttachment", "DatabaseInstanceSecret")


def sg_id(synth: Synth, prefix: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [one(synth, "AWS::EC2::SecurityGroup", prefix)[0], "GroupId"]}


def key_arn(synth: Synth) -> dict[str, Any]:
    (key_id,) = synth.of_type("AWS::KMS::Key")
    return {"Fn::GetAtt": [key_id, "Arn"]}


def deploying_md_section(title: str) -> str:
    """docs/deploying.md's `## <title>` section, or its `- **<title>**` bullet."""
    text = (ROOT / "docs" / "deploying.md").read_text()
    if f"\n## {title}\n" in text:
        return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    return next(part for part in text.split("\n- ") if part.startswith(f"**{title}**"))


def master_user(synth: Synth) -> str:
    generator = props(synth, "AWS::SecretsManager::Secret", "LambdaApp")["GenerateSecretString"]
    return str(json.loads(generator["SecretStringTemplate"])["username"])


# --- functions ---------------------------------------------------------------------


@pytest.mark.parametrize("function", APP_FUNCTIONS)
def test_functions_run_python313_on_arm64(synth: Synth, function: str) -> None:
    properties = props(synth, "AWS::Lambda::Function", function)
    assert properties["Runtime"] == "python3.13"
    assert properties["Architectures"] == ["arm64"]


def test_handlers_are_the_app_entry_points(synth: Synth) -> None:
    template = Template.from_json(synth.template)
    template.has_resource_properties(
        "AWS::Lambda::Function", {"Handler": "lambda_app.handlers.api.handler"}
    )
    template.has_resource_properties(
        "AWS::Lambda::Function", {"Handler": "lambda_app.handlers.migrate.handler"}
    )


def test_api_memory_and_timeout_fit_the_http_api_limit(synth: Synth) -> None:
    properties = props(synth, "AWS::Lambda::Function", "ApiFunction")
    assert properties["MemorySize"] == 1024
    assert 10 < properties["Timeout"] < 30  # over the DB statement timeout, under API GW's 30 s


def test_migration_function_has_the_timeout_its_runs_deadline_is_measured_against(
    synth: Synth,
) -> None:
    timeout = props(synth, "AWS::Lambda::Function", "MigrationsFunction")["Timeout"]
    assert timeout == MIGRATION_FUNCTION_TIMEOUT_SECONDS >= 10 * 60


# --- network -------------------------------------------------------------------------


def test_vpc_has_only_isolated_subnets_and_no_nat(synth: Synth) -> None:
    assert synth.of_type("AWS::EC2::NatGateway") == {}
    assert synth.of_type("AWS::EC2::InternetGateway") == {}
    assert synth.of_type("AWS::EC2::Route") == {}  # no route out of the VPC at all
    subnets = synth.of_type("AWS::EC2::Subnet")
    assert len(subnets) == 2
    assert all(s["Properties"]["MapPublicIpOnLaunch"] is False for s in subnets.values())


def test_only_the_secrets_manager_endpoint_exists(synth: Synth) -> None:
    endpoints = synth.of_type("AWS::EC2::VPCEndpoint")
    assert len(endpoints) == 1
    (endpoint,) = endpoints.values()
    assert "secretsmanager" in json.dumps(endpoint["Properties"]["ServiceName"])
    assert endpoint["Properties"]["PrivateDnsEnabled"] is True


def test_endpoint_policies_let_through_named_resources_of_this_account_only(
    synth: Synth,
) -> None:
    assert endpoint_policy_problems(synth.template) == []


def test_the_secrets_manager_endpoint_passes_every_call_the_code_makes_on_every_secret(
    prod: Synth,
) -> None:
    # A call the policy leaves out fails only on AWS, at a cold start: the list follows
    # the code. (prod: with the first superuser's secret too.)
    (endpoint,) = prod.of_type("AWS::EC2::VPCEndpoint").values()
    (statement,) = endpoint["Properties"]["PolicyDocument"]["Statement"]
    called = operations_the_code_calls("secretsmanager")
    assert "secretsmanager:GetSecretValue" in called  # the scan finds the calls
    assert called <= set(statement["Action"])
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalAccount": "123456789012"}}
    # every secret of the stack, and nothing else; the database's through its attachment
    # to the instance, whose Ref is the same secret's ARN
    attached = {
        json.dumps(attachment["Properties"]["SecretId"]): {"Ref": attachment_id}
        for attachment_id, attachment in prod.of_type(
            "AWS::SecretsManager::SecretTargetAttachment"
        ).items()
    }
    secrets = [json.dumps({"Ref": k}) for k in prod.of_type("AWS::SecretsManager::Secret")]
    expected = [json.dumps(attached.get(secret, json.loads(secret))) for secret in secrets]
    assert sorted(map(json.dumps, statement["Resource"])) == sorted(expected)


@pytest.mark.parametrize("function", APP_FUNCTIONS)
def test_functions_run_in_the_isolated_subnets(synth: Synth, function: str) -> None:
    subnet_refs = [{"Ref": k} for k in synth.of_type("AWS::EC2::Subnet")]
    vpc_config = props(synth, "AWS::Lambda::Function", function)["VpcConfig"]
    assert sorted(map(json.dumps, vpc_config["SubnetIds"])) == sorted(map(json.dumps, subnet_refs))


def test_database_and_proxy_run_in_the_isolated_subnets(synth: Synth) -> None:
    subnet_refs = sorted(json.dumps({"Ref": k}) for k in synth.of_type("AWS::EC2::Subnet"))
    group = props(synth, "AWS::RDS::DBSubnetGroup", "DatabaseInstanceSubnetGroup")
    assert sorted(map(json.dumps, group["SubnetIds"])) == subnet_refs
    proxy = props(synth, "AWS::RDS::DBProxy", "DatabaseInstanceProxy")
    assert sorted(map(json.dumps, proxy["VpcSubnetIds"])) == subnet_refs
    assert props(synth, "AWS::RDS::DBInstance", "DatabaseInstance")["PubliclyAccessible"] is False


def _ingress_sources(synth: Synth, target_prefix: str) -> list[tuple[str, int]]:
    target = sg_id(synth, target_prefix)
    rules = [r["Properties"] for r in synth.of_type("AWS::EC2::SecurityGroupIngress").values()]
    inline = props(synth, "AWS::EC2::SecurityGroup", target_prefix).get("SecurityGroupIngress", [])
    assert inline == []  # no inline (CIDR) ingress at all
    return sorted(
        (
            r["SourceSecurityGroupId"]["Fn::GetAtt"][0],
            r["FromPort"] if isinstance(r["FromPort"], int) else -1,
        )
        for r in rules
        if r["GroupId"] == target
    )


def test_only_the_api_function_reaches_the_proxy(synth: Synth) -> None:
    sources = _ingress_sources(synth, "DatabaseProxySecurityGroup")
    assert [(s.split("SecurityGroup")[0], port) for s, port in sources] == [("Api", 5432)]


def test_only_the_proxy_and_the_migrations_reach_the_database(synth: Synth) -> None:
    sources = {
        s.split("SecurityGroup")[0]
        for s, _ in _ingress_sources(synth, "DatabaseInstanceSecurityGroup")
    }
    assert sources == {"DatabaseProxy", "Migrations"}


def test_only_the_functions_reach_the_secrets_manager_endpoint(synth: Synth) -> None:
    sources = _ingress_sources(synth, "NetworkVpcSecretsManagerSecurityGroup")
    assert sorted(s.split("SecurityGroup")[0] for s, _ in sources) == ["Api", "Migrations"]
    assert {port for _, port in sources} == {443}


@pytest.mark.parametrize(
    ("group", "allowed"),
    [
        ("ApiSecurityGroup", {"DatabaseProxy", "NetworkVpcSecretsManager"}),
        ("MigrationsSecurityGroup", {"DatabaseInstance", "NetworkVpcSecretsManager"}),
        ("DatabaseProxySecurityGroup", {"DatabaseInstance"}),
    ],
)
def test_security_groups_have_no_open_egress(synth: Synth, group: str, allowed: set[str]) -> None:
    inline = props(synth, "AWS::EC2::SecurityGroup", group).get("SecurityGroupEgress", [])
    # CDK's marker rule for "no egress" (255.255.255.255/32, icmp 252-86) is the only inline one.
    assert all(rule["CidrIp"] == "255.255.255.255/32" for rule in inline)
    source = sg_id(synth, group)
    destinations = {
        r["Properties"]["DestinationSecurityGroupId"]["Fn::GetAtt"][0].split("SecurityGroup")[0]
        for r in synth.of_type("AWS::EC2::SecurityGroupEgress").values()
        if r["Properties"]["GroupId"] == source
    }
    assert destinations == allowed


# --- database and proxy ------------------------------------------------------------


def test_database_is_encrypted_backed_up_and_forces_tls(synth: Synth) -> None:
    db = props(synth, "AWS::RDS::DBInstance", "DatabaseInstance")
    assert db["StorageEncrypted"] is True
    assert db["Engine"] == "postgres" and db["EngineVersion"].split(".")[0] == "17"
    assert db["BackupRetentionPeriod"] >= 1
    params = props(synth, "AWS::RDS::DBParameterGroup", "DatabaseInstanceParameterGroup")
    assert params["Parameters"]["rds.force_ssl"] == "1"


def test_database_has_enhanced_monitoring(synth: Synth) -> None:
    db = props(synth, "AWS::RDS::DBInstance", "DatabaseInstance")
    assert db["MonitoringInterval"] == 60
    role_id = db["MonitoringRoleArn"]["Fn::GetAtt"][0]
    role = synth.resources[role_id]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "monitoring.rds.amazonaws.com"}
    assert "AmazonRDSEnhancedMonitoringRole" in json.dumps(role["ManagedPolicyArns"])


# Service roles whose trust carries no confused-deputy condition, and why. Every other
# role a service assumes must name this account (aws:SourceAccount) and, where the
# service documents it, the resources it acts for (aws:SourceArn).
TRUST_WITHOUT_SOURCE_CONDITIONS = {
    # Execution roles: Lambda documents no source keys for assuming them; only this
    # account can attach one to a function (iam:PassRole).
    "lambda.amazonaws.com": "Lambda execution roles",
    # The deployment group's service role, passed to CodeDeploy by this stack only.
    "codedeploy.amazonaws.com": "CodeDeploy's service role",
    # RDS Proxy documents a bare trust and no key it sends (infra_cdk/constructs/database.py).
    "rds.amazonaws.com": "RDS Proxy's role",
}


def test_every_service_role_trusts_only_this_accounts_requests(synth: Synth) -> None:
    account = "123456789012"  # infra_cdk/app.py's placeholder
    conditioned = {}
    for role_id, role in synth.of_type("AWS::IAM::Role").items():
        for trust in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
            service = trust["Principal"].get("Service")
            if service is None or service in TRUST_WITHOUT_SOURCE_CONDITIONS:
                continue
            conditions = trust.get("Condition", {})
            assert conditions.get("StringEquals", {}).get("aws:SourceAccount") == account, role_id
            conditioned[service] = json.dumps(conditions.get("ArnLike", {}).get("aws:SourceArn"))
    region = "us-east-1"
    assert conditioned == {
        "vpc-flow-logs.amazonaws.com": json.dumps(f"arn:aws:ec2:{region}:{account}:vpc-flow-log/*"),
        # the instance it monitors, by its fixed name
        "monitoring.rds.amazonaws.com": json.dumps(
            f"arn:aws:rds:{region}:{account}:db:lambdaapp-{synth.stage}-postgres"
        ),
    }


def test_database_credentials_are_generated_in_secrets_manager(synth: Synth) -> None:
    db = props(synth, "AWS::RDS::DBInstance", "DatabaseInstance")
    password = json.dumps(db["MasterUserPassword"])
    assert "{{resolve:secretsmanager:" in password  # a dynamic reference, never a value
    secret = props(synth, "AWS::SecretsManager::Secret", "LambdaApp")
    assert "GenerateSecretString" in secret and "SecretString" not in secret


def test_proxy_requires_tls_and_end_to_end_iam_auth_and_holds_no_secret(synth: Synth) -> None:
    proxy = props(synth, "AWS::RDS::DBProxy", "DatabaseInstanceProxy")
    assert proxy["RequireTLS"] is True
    assert proxy["EngineFamily"] == "POSTGRESQL"
    # IAM from the client to the proxy and from the proxy to PostgreSQL: with no
    # password to log in with, the proxy reaches only users that have rds_iam.
    assert proxy["DefaultAuthScheme"] == "IAM_AUTH"
    assert "Auth" not in proxy
    assert proxy.get("DebugLogging", False) is False


def test_the_local_gateway_gives_invocations_the_api_functions_timeout(synth: Synth) -> None:
    api = props(synth, "AWS::Lambda::Function", "ApiFunction")
    assert api["Timeout"] == LOCAL_API_TIMEOUT_SECONDS


def test_a_kept_connection_is_replaced_before_the_proxy_would_close_it_idle(
    synth: Synth,
) -> None:
    # DB_POOL=single replaces its connection by age, and its age bounds its idle time.
    proxy = props(synth, "AWS::RDS::DBProxy", "DatabaseInstanceProxy")
    assert proxy["IdleClientTimeout"] > KEPT_CONNECTION_RECYCLE_SECONDS


def _statements(synth: Synth, policy_prefix: str) -> list[dict[str, Any]]:
    policy = props(synth, "AWS::IAM::Policy", policy_prefix)
    return list(policy["PolicyDocument"]["Statement"])


def _dbuser_arn(statement: dict[str, Any]) -> tuple[Any, str]:
    """rds-db:connect's resource, as (the resource id part, the user name)."""
    prefix, resource_id, user = statement["Resource"]["Fn::Join"][1]
    assert prefix == "arn:aws:rds-db:us-east-1:123456789012:dbuser:"
    assert user.startswith("/")
    return resource_id, user[1:]


def test_api_may_connect_to_the_proxy_as_the_api_user_only(synth: Synth) -> None:
    statements = [
        s
        for s in _statements(synth, "ApiFunctionServiceRoleDefaultPolicy")
        if s["Action"] == "rds-db:connect"
    ]
    assert len(statements) == 1
    resource_id, user = _dbuser_arn(statements[0])
    assert user == API_ROLE  # the role the migration creates, not the schema's owner
    assert user != master_user(synth)
    proxy_id = one(synth, "AWS::RDS::DBProxy", "DatabaseInstanceProxy")[0]
    # The proxy's resource id, the last part of its ARN.
    assert json.dumps(resource_id) == json.dumps(
        {"Fn::Select": [6, {"Fn::Split": [":", {"Fn::GetAtt": [proxy_id, "DBProxyArn"]}]}]}
    )


def test_proxy_signs_in_to_postgres_as_the_api_user_only(synth: Synth) -> None:
    proxy = props(synth, "AWS::RDS::DBProxy", "DatabaseInstanceProxy")
    role_id = proxy["RoleArn"]["Fn::GetAtt"][0]
    trust = synth.resources[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "rds.amazonaws.com"}]
    policies = [
        p["Properties"]
        for p in synth.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    assert len(policies) == 1
    (statement,) = policies[0]["PolicyDocument"]["Statement"]  # no secret, no key
    assert statement["Action"] == "rds-db:connect"
    resource_id, user = _dbuser_arn(statement)
    assert user == API_ROLE
    db_id = one(synth, "AWS::RDS::DBInstance", "DatabaseInstance")[0]
    assert resource_id == {"Fn::GetAtt": [db_id, "DbiResourceId"]}  # the instance's


def test_no_role_may_connect_as_the_schema_owner_with_iam(synth: Synth) -> None:
    # The owner signs in only with the password, directly: never through the proxy.
    users = [
        _dbuser_arn(statement)[1]
        for policy in synth.of_type("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "rds-db:connect"
    ]
    assert users == [API_ROLE, API_ROLE]  # the API function, and the proxy


def _readable_secrets(statements: list[dict[str, Any]]) -> list[Any]:
    readable: list[Any] = []
    for statement in statements:
        if "secretsmanager:GetSecretValue" in statement["Action"]:
            resource = statement["Resource"]
            readable += resource if isinstance(resource, list) else [resource]
    return readable


def test_secret_read_grants_are_scoped(synth: Synth) -> None:
    jwt = ref_of(synth, "AWS::SecretsManager::Secret", "JwtSecret")
    db_secret = db_secret_ref(synth)
    api = _statements(synth, "ApiFunctionServiceRoleDefaultPolicy")
    migrations = _statements(synth, "MigrationsFunctionServiceRoleDefaultPolicy")
    assert _readable_secrets(api) == [jwt]  # never the database password
    migration_secrets = _readable_secrets(migrations)
    assert db_secret in migration_secrets and jwt not in migration_secrets


# --- encryption at rest ------------------------------------------------------------------


def test_one_customer_managed_key_with_rotation(synth: Synth) -> None:
    (key,) = synth.of_type("AWS::KMS::Key").values()
    assert key["Properties"]["EnableKeyRotation"] is True


def _references(value: object, logical_id: str) -> bool:
    return logical_id in json.dumps(value)


def test_the_key_outlives_the_stack_in_prod_only_and_what_it_encrypts_never_outlives_it(
    dev: Synth, prod: Synth
) -> None:
    # Prod keeps logs and secrets readable after a delete; dev keeps nothing, so its key
    # goes too instead of being orphaned ($1 a month each) by every teardown.
    (prod_key,) = prod.of_type("AWS::KMS::Key").values()
    ((dev_key_id, dev_key),) = dev.of_type("AWS::KMS::Key").items()
    assert prod_key["DeletionPolicy"] == "Retain" == prod_key["UpdateReplacePolicy"]
    assert dev_key["DeletionPolicy"] == "Delete" == dev_key["UpdateReplacePolicy"]
    # KMS's longest wait: a deleted secret's recovery window (at most 30 days) ends first
    assert dev_key["Properties"]["PendingWindowInDays"] == 30
    # Nothing dev retains is encrypted with the key that the teardown deletes.
    kept_in_dev = {
        logical_id
        for logical_id, resource in dev.resources.items()
        if logical_id != dev_key_id
        and resource.get("DeletionPolicy", "Delete") != "Delete"
        and _references(resource.get("Properties", {}), dev_key_id)
    }
    assert kept_in_dev == set()


@pytest.mark.parametrize(
    ("resource_type", "key_property"),
    [
        ("AWS::Logs::LogGroup", "KmsKeyId"),
        ("AWS::SecretsManager::Secret", "KmsKeyId"),
        ("AWS::SNS::Topic", "KmsMasterKeyId"),
    ],
)
def test_logs_secrets_and_alarm_topic_are_encrypted_with_the_key(
    synth: Synth, resource_type: str, key_property: str
) -> None:
    resources = synth.of_type(resource_type)
    assert resources
    unencrypted = [
        logical_id
        for logical_id, resource in resources.items()
        if resource["Properties"].get(key_property) != key_arn(synth)
    ]
    assert unencrypted == []


def _key_statements(synth: Synth) -> list[dict[str, Any]]:
    (key,) = synth.of_type("AWS::KMS::Key").values()
    return list(key["Properties"]["KeyPolicy"]["Statement"])


def _service_statement(synth: Synth, service: str) -> dict[str, Any]:
    (statement,) = [s for s in _key_statements(synth) if s["Principal"] == {"Service": service}]
    return statement


def test_key_lets_cloudwatch_logs_encrypt_this_accounts_log_groups_only(synth: Synth) -> None:
    statement = _service_statement(synth, "logs.us-east-1.amazonaws.com")
    assert "kms:GenerateDataKey*" in statement["Action"]
    assert statement["Condition"] == {
        "ArnLike": {
            "kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:us-east-1:123456789012:log-group:*"
        }
    }


def test_key_lets_this_accounts_alarms_publish_to_the_encrypted_topic(synth: Synth) -> None:
    statement = _service_statement(synth, "cloudwatch.amazonaws.com")
    assert sorted(statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "123456789012"},
        "ArnLike": {"aws:SourceArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:*"},
    }


def _aws_principals(statement: dict[str, Any]) -> list[Any]:
    principals = statement["Principal"].get("AWS", [])
    return principals if isinstance(principals, list) else [principals]


def test_functions_decrypt_with_the_key_only_through_secrets_manager(synth: Synth) -> None:
    roles = {
        one(synth, "AWS::IAM::Role", f"{function}ServiceRole")[0] for function in APP_FUNCTIONS
    }
    statements = [
        s
        for s in _key_statements(synth)
        if roles & {p["Fn::GetAtt"][0] for p in _aws_principals(s) if "Fn::GetAtt" in p}
    ]
    assert statements
    for statement in statements:
        assert statement["Action"] == "kms:Decrypt"
        assert statement["Condition"] == {
            "StringEquals": {"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}
        }
    assert all(
        s["Principal"] != "*" and s["Principal"] != {"AWS": "*"} for s in _key_statements(synth)
    )


# --- API -------------------------------------------------------------------------------


def test_http_api_stage_has_access_logs_and_throttling(synth: Synth) -> None:
    stage = props(synth, "AWS::ApiGatewayV2::Stage", "ApiDefaultStage")
    assert stage["StageName"] == "$default" and stage["AutoDeploy"] is True
    throttle = stage["DefaultRouteSettings"]
    assert throttle["ThrottlingRateLimit"] > 0 and throttle["ThrottlingBurstLimit"] > 0
    access = stage["AccessLogSettings"]
    assert access["DestinationArn"]["Fn::GetAtt"][0].startswith("ApiAccessLogs")
    log_format = json.loads(access["Format"])
    assert log_format["status"] == "$context.status"
    assert not any("authorization" in value.lower() for value in log_format.values())


def test_http_api_calls_the_published_alias(synth: Synth) -> None:
    integration = props(synth, "AWS::ApiGatewayV2::Integration", "ApiHttpApiDefaultRoute")
    alias_id = one(synth, "AWS::Lambda::Alias", "ApiLive")[0]
    assert integration["IntegrationUri"] == {"Ref": alias_id}


def test_outputs_name_the_release_inputs(synth: Synth) -> None:
    outputs = synth.template["Outputs"]
    assert {"ApiUrl", "MigrationFunctionName", "ProxyEndpoint"} <= set(outputs)
    function_id = one(synth, "AWS::Lambda::Function", "MigrationsFunction")[0]
    assert outputs["MigrationFunctionName"]["Value"] == {"Ref": function_id}
    proxy_id = one(synth, "AWS::RDS::DBProxy", "DatabaseInstanceProxy")[0]
    assert outputs["ProxyEndpoint"]["Value"] == {"Fn::GetAtt": [proxy_id, "Endpoint"]}


def test_api_environment_points_at_the_proxy_with_iam_auth(synth: Synth) -> None:
    env = props(synth, "AWS::Lambda::Function", "ApiFunction")["Environment"]["Variables"]
    proxy_id = one(synth, "AWS::RDS::DBProxy", "DatabaseInstanceProxy")[0]
    assert env["DB_HOST"] == {"Fn::GetAtt": [proxy_id, "Endpoint"]}
    assert env["DB_IAM_AUTH"] == "true" and env["DB_USER"] == API_ROLE
    assert env["DB_SSL"] == "verify-full"
    assert env["ENVIRONMENT"] == synth.stage
    assert "DB_SECRET_ARN" not in env


def test_migration_environment_points_at_the_instance_with_its_secret(synth: Synth) -> None:
    env = props(synth, "AWS::Lambda::Function", "MigrationsFunction")["Environment"]["Variables"]
    db_id = one(synth, "AWS::RDS::DBInstance", "DatabaseInstance")[0]
    assert env["DB_HOST"] == {"Fn::GetAtt": [db_id, "Endpoint.Address"]}
    assert env["DB_SECRET_ARN"] == db_secret_ref(synth)
    assert "DB_IAM_AUTH" not in env
    # Its settings model has no JWT setting: it never signs or checks a token.
    assert "JWT_SECRET_ARN" not in env


# --- secrets never in plain sight ------------------------------------------------------

SECRET_ENV_NAMES = re.compile(r"PASSWORD|SECRET(?!_ARN)|TOKEN|DATABASE_URL|PRIVATE_KEY", re.I)


def test_environment_variables_hold_no_secret_values(synth: Synth) -> None:
    for logical_id, function in synth.of_type("AWS::Lambda::Function").items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        for name, value in variables.items():
            assert not SECRET_ENV_NAMES.search(name), f"{logical_id}: {name}"
            if name.endswith("_SECRET_ARN"):
                # A reference to a secret in this stack, never a literal.
                assert isinstance(value, dict) and set(value) == {"Ref"}, f"{logical_id}: {name}"
            elif isinstance(value, str):
                assert len(value) < 40, f"{logical_id}: {name} looks like a credential"


def test_template_contains_no_secret_material(synth: Synth) -> None:
    text = json.dumps(synth.template)
    assert '"SecretString"' not in text  # every secret is generated by Secrets Manager
    assert 'JWT_SECRET"' not in text and "DATABASE_URL" not in text
    assert not re.search(r"postgres(ql)?(\+asyncpg)?://", text)
    for secret in synth.of_type("AWS::SecretsManager::Secret").values():
        generator = secret["Properties"]["GenerateSecretString"]
        template = json.loads(generator.get("SecretStringTemplate", "{}"))
        assert "password" not in template  # generated into the key, never templated


# --- logs -----------------------------------------------------------------------------


def test_every_log_group_has_a_retention(synth: Synth) -> None:
    groups = synth.of_type("AWS::Logs::LogGroup")
    assert len(groups) >= 6  # flow logs, 2 functions, access logs, 2 RDS exports
    assert all(g["Properties"].get("RetentionInDays") for g in groups.values())
    assert synth.of_type("Custom::LogRetention") == {}


def test_every_function_logs_to_an_encrypted_retained_group_of_the_stack(synth: Synth) -> None:
    # CDK's own handlers too: Lambda would otherwise make theirs, kept forever, unencrypted.
    groups = synth.of_type("AWS::Logs::LogGroup")
    functions = synth.of_type("AWS::Lambda::Function")
    assert len(functions) >= 6  # 4 of ours, CDK's security-group lock-down and trigger
    for name, function in functions.items():
        group = function["Properties"].get("LoggingConfig", {}).get("LogGroup")
        assert isinstance(group, dict) and group.get("Ref") in groups, name
        settings = groups[group["Ref"]]["Properties"]
        assert settings["RetentionInDays"] and "KmsKeyId" in settings, name


def test_the_log_groups_aws_makes_itself_are_left_to_it_and_named_in_the_docs(
    synth: Synth,
) -> None:
    # Enhanced monitoring writes to RDSOSMetrics, one group per account and region that RDS
    # makes and every instance shares; the proxy makes /aws/rds/proxy/<name> when it first
    # logs. The stack makes neither (either would fail an update, or take the group away
    # from other instances), so the docs must not say every log group is the stack's.
    assert props(synth, "AWS::RDS::DBInstance", "DatabaseInstance")["MonitoringInterval"] > 0
    assert synth.of_type("AWS::RDS::DBProxy")
    names = [
        g["Properties"].get("LogGroupName") for g in synth.of_type("AWS::Logs::LogGroup").values()
    ]
    assert not [
        n for n in names if isinstance(n, str) and n.startswith(("RDSOSMetrics", "/aws/rds/proxy/"))
    ]
    logs = deploying_md_section("Logs")
    assert "`RDSOSMetrics`" in logs and "`/aws/rds/proxy/<name>`" in logs
    assert "the one group" not in logs


@pytest.mark.parametrize("function", APP_FUNCTIONS)
def test_functions_log_to_their_own_retained_group(synth: Synth, function: str) -> None:
    logging_config = props(synth, "AWS::Lambda::Function", function)["LoggingConfig"]
    assert logging_config["LogGroup"]["Ref"].startswith(f"{function}Logs")


def test_vpc_flow_logs_are_on(synth: Synth) -> None:
    flow_log = props(synth, "AWS::EC2::FlowLog", "NetworkVpcFlowLog")
    assert flow_log["ResourceType"] == "VPC"


# --- release ordering ------------------------------------------------------------------


def test_migration_trigger_runs_after_database_and_proxy(synth: Synth) -> None:
    _, trigger = one(synth, "Custom::Trigger", "MigrationsRun")
    depends_on = set(trigger.get("DependsOn", []))
    for resource_type, prefix in [
        ("AWS::RDS::DBInstance", "DatabaseInstance"),
        ("AWS::RDS::DBProxy", "DatabaseInstanceProxy"),
        ("AWS::RDS::DBProxyTargetGroup", "DatabaseInstanceProxyProxyTargetGroup"),
        ("AWS::EC2::VPCEndpoint", "NetworkVpcSecretsManager"),
    ]:
        assert one(synth, resource_type, prefix)[0] in depends_on, prefix
    properties = trigger["Properties"]
    version_id = one(synth, "AWS::Lambda::Version", "MigrationsFunctionCurrentVersion")[0]
    assert properties["HandlerArn"] == {"Ref": version_id}  # a new version runs it again
    assert properties["InvocationType"] == "RequestResponse"  # a failure fails the deploy
    assert properties["ExecuteOnHandlerChange"] is True
    assert int(properties["Timeout"]) >= 14 * 60 * 1000


def test_api_function_is_updated_only_after_the_migrations_ran(synth: Synth) -> None:
    trigger_id, _ = one(synth, "Custom::Trigger", "MigrationsRun")
    _, api = one(synth, "AWS::Lambda::Function", "ApiFunction")
    assert trigger_id in api.get("DependsOn", [])


def test_release_id_makes_a_new_migration_version(dev: Synth, prod: Synth) -> None:
    env = props(prod, "AWS::Lambda::Function", "MigrationsFunction")["Environment"]["Variables"]
    assert env["RELEASE_ID"] == PROD_OPTIONS["release_id"]
    dev_env = props(dev, "AWS::Lambda::Function", "MigrationsFunction")["Environment"]["Variables"]
    assert "RELEASE_ID" not in dev_env


# --- alarms and dashboard ----------------------------------------------------------------

# Single-metric alarms of the Monitoring construct (the 5xx rate is metric math and the
# app's own metrics have their tests: tests/infra/test_monitoring.py).
EXPECTED_ALARMS = {
    ("AWS/Lambda", "Errors"),
    ("AWS/Lambda", "Throttles"),
    ("AWS/Lambda", "Duration"),
    ("AWS/RDS", "CPUUtilization"),
    ("AWS/RDS", "DatabaseConnections"),
    ("AWS/RDS", "FreeStorageSpace"),
    ("AWS/RDS", "DatabaseConnectionsCurrentlySessionPinned"),
    ("AWS/RDS", "ClientConnections"),
    ("LambdaApp", "LoginLockouts"),
    ("LambdaApp", "MailFailures"),
}


def test_alarms_cover_api_functions_and_database(synth: Synth) -> None:
    alarms = [
        a["Properties"]
        for k, a in synth.of_type("AWS::CloudWatch::Alarm").items()
        if k.startswith("Monitoring") and "MetricName" in a["Properties"]
    ]
    assert {(a["Namespace"], a["MetricName"]) for a in alarms} == EXPECTED_ALARMS
    topic = ref_of(synth, "AWS::SNS::Topic", "MonitoringAlarmTopic")
    assert all(a["AlarmActions"] == [topic] for a in alarms)
    errors = [a for a in alarms if a["MetricName"] == "Errors"]
    assert len(errors) == 3  # the API, the migration and the signing-key rotation function
    storage = next(a for a in alarms if a["MetricName"] == "FreeStorageSpace")
    assert storage["ComparisonOperator"] == "LessThanThreshold"


def test_duration_alarm_fires_before_the_timeout(synth: Synth) -> None:
    timeout_ms = props(synth, "AWS::Lambda::Function", "ApiFunction")["Timeout"] * 1000
    duration = props(synth, "AWS::CloudWatch::Alarm", "MonitoringApiFunctionDuration")
    assert duration["ExtendedStatistic"] == "p99"
    assert 0 < duration["Threshold"] < timeout_ms


def test_session_pinning_alarm_watches_the_proxy(synth: Synth) -> None:
    alarm = props(synth, "AWS::CloudWatch::Alarm", "MonitoringProxySessionPinning")
    assert alarm["MetricName"] == "DatabaseConnectionsCurrentlySessionPinned"
    proxy = ref_of(synth, "AWS::RDS::DBProxy", "DatabaseInstanceProxy")  # Ref: its name
    assert alarm["Dimensions"] == [{"Name": "ProxyName", "Value": proxy}]
    assert alarm["Statistic"] == "Sum"  # each proxy node reports its own pinned connections
    assert alarm["Period"] == 60  # once a minute: a longer Sum would count each one again
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["Threshold"] == 0
    topic = ref_of(synth, "AWS::SNS::Topic", "MonitoringAlarmTopic")
    assert alarm["AlarmActions"] == [topic] and alarm["OKActions"] == [topic]


def test_dashboard_shows_the_alarms_the_database_and_the_proxy(synth: Synth) -> None:
    body = json.dumps(props(synth, "AWS::CloudWatch::Dashboard", "MonitoringDashboard"))
    assert "CPUUtilization" in body and "5xx" in body and "alarms" in body.lower()
    proxy_id = one(synth, "AWS::RDS::DBProxy", "DatabaseInstanceProxy")[0]
    assert "DatabaseConnectionsCurrentlySessionPinned" in body and proxy_id in body


# --- stages ----------------------------------------------------------------------------


def test_prod_keeps_its_logs_when_the_stack_goes_and_dev_deletes_them(
    dev: Synth, prod: Synth
) -> None:
    # What happened before a prod stack was deleted stays readable, with its snapshot
    # and secrets (the key that encrypts the logs is kept too).
    prod_groups = prod.of_type("AWS::Logs::LogGroup")
    dev_groups = dev.of_type("AWS::Logs::LogGroup")
    assert prod_groups and dev_groups
    assert {(g["DeletionPolicy"], g["UpdateReplacePolicy"]) for g in prod_groups.values()} == {
        ("Retain", "Retain")
    }
    assert {(g["DeletionPolicy"], g["UpdateReplacePolicy"]) for g in dev_groups.values()} == {
        ("Delete", "Delete")
    }


# Lambda keeps this many of an account's concurrent executions unreserved: a reservation that
# would leave fewer is refused, here when the API function is created, deep into a first deploy.
LAMBDA_MIN_UNRESERVED_CONCURRENCY = 100


def test_the_prerequisites_name_the_concurrency_limit_the_reservation_needs(
    dev: Synth, prod: Synth
) -> None:
    reserved = [
        function["Properties"]["ReservedConcurrentExecutions"]
        for stage in (dev, prod)
        for function in stage.of_type("AWS::Lambda::Function").values()
        if "ReservedConcurrentExecutions" in function["Properties"]
    ]
    assert reserved  # prod's API function
    needed = max(reserved) + LAMBDA_MIN_UNRESERVED_CONCURRENCY
    prerequisites = " ".join(deploying_md_section("Prerequisites").split())
    assert f"a Lambda concurrency limit of {needed} or more" in prerequisites
    # how to check it, and that the figure to read is the unreserved one
    assert "`aws lambda get-account-settings --query AccountLimit`" in prerequisites
    assert f"`UnreservedConcurrentExecutions` must be at least {needed}" in prerequisites


def test_prod_protects_the_database_and_dev_can_be_torn_down(dev: Synth, prod: Synth) -> None:
    _, dev_db = one(dev, "AWS::RDS::DBInstance", "DatabaseInstance")
    _, prod_db = one(prod, "AWS::RDS::DBInstance", "DatabaseInstance")
    assert prod_db["Properties"]["DeletionProtection"] is True
    assert prod_db["DeletionPolicy"] == "Snapshot" and prod_db["UpdateReplacePolicy"] == "Snapshot"
    assert prod_db["Properties"]["MultiAZ"] is True
    assert dev_db["Properties"]["DeletionProtection"] is False
    assert dev_db["DeletionPolicy"] == "Delete"
    # the master password stays with the instance and its final snapshot
    _, prod_master = one(prod, "AWS::SecretsManager::Secret", "LambdaAppprodDatabaseInstanceSecret")
    _, dev_master = one(dev, "AWS::SecretsManager::Secret", "LambdaAppdevDatabaseInstanceSecret")
    assert prod_master["DeletionPolicy"] == "Retain" == prod_master["UpdateReplacePolicy"]
    assert dev_master["DeletionPolicy"] == "Delete"
    assert dev_db["Properties"]["MultiAZ"] is False
    assert (
        prod_db["Properties"]["BackupRetentionPeriod"]
        > dev_db["Properties"]["BackupRetentionPeriod"]
    )
    assert dev_db["Properties"]["DBInstanceClass"] == "db.t4g.micro"
    assert prod_db["Properties"]["DBInstanceClass"] == "db.t4g.small"


def test_prod_api_has_snapstart_and_reserved_concurrency(dev: Synth, prod: Synth) -> None:
    prod_api = props(prod, "AWS::Lambda::Function", "ApiFunction")
    dev_api = props(dev, "AWS::Lambda::Function", "ApiFunction")
    assert prod_api["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert prod_api["ReservedConcurrentExecutions"] > 0
    assert "SnapStart" not in dev_api and "ReservedConcurrentExecutions" not in dev_api


def test_prod_keeps_logs_longer_and_throttles_higher(dev: Synth, prod: Synth) -> None:
    def retention(synth: Synth) -> int:
        return int(props(synth, "AWS::Logs::LogGroup", "ApiFunctionLogs")["RetentionInDays"])

    def rate(synth: Synth) -> float:
        stage = props(synth, "AWS::ApiGatewayV2::Stage", "ApiDefaultStage")
        return float(stage["DefaultRouteSettings"]["ThrottlingRateLimit"])

    assert retention(prod) > retention(dev)
    assert rate(prod) > rate(dev)


def test_prod_options_add_a_superuser_secret_and_an_alarm_subscription(
    dev: Synth, prod: Synth
) -> None:
    env = props(prod, "AWS::Lambda::Function", "MigrationsFunction")["Environment"]["Variables"]
    assert env["FIRST_SUPERUSER_SECRET_ARN"] == ref_of(
        prod, "AWS::SecretsManager::Secret", "FirstSuperuserSecret"
    )
    api_env = props(prod, "AWS::Lambda::Function", "ApiFunction")["Environment"]["Variables"]
    assert "FIRST_SUPERUSER_SECRET_ARN" not in api_env
    assert props(prod, "AWS::SNS::Subscription", "MonitoringAlarmTopic")["Protocol"] == "email"
    assert dev.of_type("AWS::SNS::Subscription") == {}


def test_prod_keeps_the_first_superusers_password_when_the_option_is_dropped(
    prod: Synth, tmp_path: Path
) -> None:
    _, secret = one(prod, "AWS::SecretsManager::Secret", "FirstSuperuserSecret")
    # The user stays in the database: its password's only copy must stay too.
    assert secret["DeletionPolicy"] == "Retain" and secret["UpdateReplacePolicy"] == "Retain"
    dev = synthesize("dev", tmp_path, first_superuser_email="admin@example.com")
    _, dev_secret = one(dev, "AWS::SecretsManager::Secret", "FirstSuperuserSecret")
    assert dev_secret["DeletionPolicy"] == "Delete"  # dev is torn down whole


def test_synth_needs_no_aws_lookups(synth: Synth) -> None:
    # Missing context would make the CLI call AWS (and a credential-less synth fail).
    manifest = json.loads((synth.outdir / "manifest.json").read_text())
    assert manifest.get("missing", []) == []
    environment = manifest["artifacts"][f"LambdaApp-{synth.stage}"]["environment"]
    assert environment == "aws://123456789012/us-east-1"  # placeholders: no credentials here


def test_cdk_json_runs_the_app_with_the_project_venv() -> None:
    from tests.infra.conftest import ROOT

    app = json.loads((ROOT / "cdk.json").read_text())["app"]
    assert app == ".venv/bin/python -m infra_cdk.app"
    assert (ROOT / "infra_cdk" / "app.py").is_file()


def _asset_key(flavour_name: str) -> str:
    """The S3 key CDK gives a flavour's asset, computed apart from any stack (no bundling)."""
    from aws_cdk import App, Stack

    from infra_cdk.bundling import FLAVOURS
    from infra_cdk.lambda_code import lambda_code
    from tests.infra.conftest import cdk_json_context

    app = App(context={**cdk_json_context(), "aws:cdk:bundling-stacks": []})
    config = lambda_code(FLAVOURS[flavour_name]).bind(Stack(app, "AssetKeyProbe"))
    assert config.s3_location is not None
    return config.s3_location.object_key


def test_each_function_runs_its_own_bundle_flavour(synth: Synth) -> None:
    # The API's bundle leaves Alembic and the migrations out; the migration function's
    # holds them. Each asset's hash is deterministic and its own.
    keys = {
        function: props(synth, "AWS::Lambda::Function", function)["Code"]["S3Key"]
        for function in APP_FUNCTIONS
    }
    assert keys == {"ApiFunction": _asset_key("api"), "MigrationsFunction": _asset_key("migration")}
    assert keys["ApiFunction"] != keys["MigrationsFunction"]
