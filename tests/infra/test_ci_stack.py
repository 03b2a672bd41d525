"""The GitHub Actions deploy role (infra_cdk/ci.py): who can assume it, and what it can do."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App, Environment
from aws_cdk.assertions import Match, Template

from infra_cdk.ci import GithubDeployStack, trusted_subjects
from tests.infra.conftest import Synth, cdk_json_context
from tests.infra.template_checks import cfn_lint_errors

ACCOUNT, REGION = "123456789012", "us-east-1"  # infra_cdk/app.py's placeholders
OIDC = "token.actions.githubusercontent.com"
STAGE_STACKS = ("LambdaApp-dev", "LambdaApp-prod")


def statements(synth: Synth) -> dict[str, dict[str, Any]]:
    (policy,) = synth.of_type("AWS::IAM::Policy").values()
    return {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}


def test_only_built_with_a_repository(dev: Synth, ci: Synth) -> None:
    assert not (dev.outdir / "LambdaApp-ci.template.json").exists()
    assert {resource["Type"] for resource in ci.resources.values()} == {
        "AWS::IAM::OIDCProvider",
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
    }


def test_the_provider_is_githubs_for_sts(ci: Synth) -> None:
    Template.from_json(ci.template).has_resource_properties(
        "AWS::IAM::OIDCProvider",
        {"Url": f"https://{OIDC}", "ClientIdList": ["sts.amazonaws.com"]},
    )


def test_only_main_and_the_production_environment_can_assume_the_role(ci: Synth) -> None:
    (provider_id,) = ci.of_type("AWS::IAM::OIDCProvider")
    Template.from_json(ci.template).has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Principal": {"Federated": {"Ref": provider_id}},
                        "Condition": {
                            "StringEquals": {
                                f"{OIDC}:aud": "sts.amazonaws.com",
                                f"{OIDC}:sub": [
                                    "repo:octo-org/octo-repo:ref:refs/heads/main",
                                    "repo:octo-org/octo-repo:environment:production",
                                ],
                            }
                        },
                    }
                ],
            },
            # The CLI re-assumes the bootstrap roles from this session for a long deploy.
            "MaxSessionDuration": 7200,
        },
    )


def test_the_role_can_only_assume_the_cdk_bootstrap_roles(ci: Synth) -> None:
    by_sid = statements(ci)
    assert set(by_sid) == {"AssumeCdkBootstrapRoles", "ReadStageOutputs", "InvokeMigrationFunction"}
    assert by_sid["AssumeCdkBootstrapRoles"] == {
        "Sid": "AssumeCdkBootstrapRoles",
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Resource": [
            f"arn:aws:iam::{ACCOUNT}:role/cdk-hnb659fds-{role}-role-{ACCOUNT}-{REGION}"
            for role in ("deploy", "file-publishing")
        ],
    }
    assert ci.of_type("AWS::IAM::ManagedPolicy") == {}
    (role,) = ci.of_type("AWS::IAM::Role").values()
    assert "ManagedPolicyArns" not in role["Properties"]
    assert "Policies" not in role["Properties"]


def test_the_release_check_reads_the_stages_and_invokes_their_migration_function(
    ci: Synth, dev: Synth
) -> None:
    by_sid = statements(ci)
    assert by_sid["ReadStageOutputs"]["Action"] == "cloudformation:DescribeStacks"
    assert by_sid["ReadStageOutputs"]["Resource"] == [
        f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{stack}/*" for stack in STAGE_STACKS
    ]
    assert by_sid["InvokeMigrationFunction"]["Action"] == "lambda:InvokeFunction"
    patterns = by_sid["InvokeMigrationFunction"]["Resource"]
    assert patterns == [
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{stack}-MigrationsFunction*"
        for stack in STAGE_STACKS
    ]
    # CloudFormation names a function <stack>-<logical id>-<suffix>: the pattern must
    # match the migration function's logical ID, and no other function's.
    matching = [
        logical_id
        for logical_id in dev.of_type("AWS::Lambda::Function")
        if f"LambdaApp-dev-{logical_id}".startswith(patterns[0].split(":function:")[1][:-1])
    ]
    assert len(matching) == 1 and matching[0].startswith("MigrationsFunction")


def test_no_wildcard_action_or_whole_service_resource(ci: Synth) -> None:
    for statement in statements(ci).values():
        assert "*" not in statement["Action"]
        resources = statement["Resource"]
        assert all(isinstance(r, str) and r.count("*") <= 1 for r in resources)
        assert all(r.endswith("*") or "*" not in r for r in resources)
        assert "*" not in resources


def test_the_role_arn_is_an_output(ci: Synth) -> None:
    (role_id,) = ci.of_type("AWS::IAM::Role")
    assert ci.template["Outputs"]["DeployRoleArn"]["Value"] == {"Fn::GetAtt": [role_id, "Arn"]}


def test_an_existing_provider_is_reused() -> None:
    # given an account whose GitHub OIDC provider another stack created
    existing = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC}"
    # when
    stack = GithubDeployStack(
        App(context=cdk_json_context()),  # its feature flags: partition literals
        "Ci",
        repository="octo-org/octo-repo",
        deployed_stacks=["LambdaApp-dev"],
        oidc_provider_arn=existing,
        env=Environment(account=ACCOUNT, region=REGION),
    )
    # then
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::IAM::OIDCProvider", 0)
    template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [Match.object_like({"Principal": {"Federated": existing}})]
            }
        },
    )


@pytest.mark.parametrize(
    "repository", ["octo-org/octo-repo", "octo-org@123456/octo-repo@789012", "a/b.c_d-e"]
)
def test_repository_forms(repository: str) -> None:
    # Repositories created since July 2026 sign the immutable owner@ID/name@ID form.
    assert trusted_subjects(repository)[0] == f"repo:{repository}:ref:refs/heads/main"


@pytest.mark.parametrize("repository", ["octo-repo", "octo-org/*", "o/r:ref:refs/heads/x", ""])
def test_a_repository_that_would_widen_the_trust_is_refused(repository: str) -> None:
    with pytest.raises(ValueError, match="owner/name"):
        trusted_subjects(repository)


# --- the checks every stack passes (checkov: tests/infra/test_checks.py) -----------------


def test_ci_stack_has_no_cdk_nag_findings(ci: Synth) -> None:
    report = ci.validation_report()
    failures = [
        (violation["ruleName"], construct["constructPath"])
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
        for construct in violation["violatingConstructs"]
        if construct["constructPath"].startswith("LambdaApp-ci/")
    ]
    assert failures == []


def test_ci_stack_acknowledges_only_the_generated_name_suffixes(ci: Synth) -> None:
    acknowledged = {
        (rule["id"], len(rule["reason"]) >= 60)
        for resource in ci.resources.values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    }
    assert acknowledged == {
        (f"AwsSolutions-IAM5[Resource::{arn}]", True)
        for resources in (
            statements(ci)["ReadStageOutputs"]["Resource"],
            statements(ci)["InvokeMigrationFunction"]["Resource"],
        )
        for arn in resources
    }


def test_ci_stack_passes_cfn_lint(ci: Synth) -> None:
    assert cfn_lint_errors(ci.template) == []
