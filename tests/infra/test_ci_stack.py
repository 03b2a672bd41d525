"""The GitHub Actions deploy role (infra_cdk/ci.py): who can assume it, and what it can do."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App, Environment
from aws_cdk.assertions import Match, Template

from infra_cdk.ci import DeployTarget, GithubDeployStack, trusted_subject
from infra_cdk.config import PROD_BOOTSTRAP_QUALIFIER
from tests.infra.conftest import Synth, cdk_json_context
from tests.infra.template_checks import cfn_lint_errors

ACCOUNT, REGION = "123456789012", "us-east-1"  # infra_cdk/app.py's placeholders
OIDC = "token.actions.githubusercontent.com"
ROLES = {"dev": "DevDeployRole", "prod": "ProdDeployRole"}
QUALIFIERS = {"dev": "hnb659fds", "prod": PROD_BOOTSTRAP_QUALIFIER}
SUBJECTS = {
    "dev": "repo:octo-org/octo-repo:ref:refs/heads/main",
    "prod": "repo:octo-org/octo-repo:environment:production",
}


def role_id(synth: Synth, stage: str) -> str:
    (found,) = [k for k in synth.of_type("AWS::IAM::Role") if k.startswith(ROLES[stage])]
    return found


def statements(synth: Synth, stage: str) -> dict[str, dict[str, Any]]:
    (policy,) = [
        p
        for p in synth.of_type("AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": role_id(synth, stage)}]
    ]
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


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_each_stages_role_trusts_its_own_job_only(ci: Synth, stage: str) -> None:
    (provider_id,) = ci.of_type("AWS::IAM::OIDCProvider")
    role = ci.resources[role_id(ci, stage)]["Properties"]
    assert role["AssumeRolePolicyDocument"] == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Principal": {"Federated": {"Ref": provider_id}},
                "Condition": {
                    "StringEquals": {
                        f"{OIDC}:aud": "sts.amazonaws.com",
                        f"{OIDC}:sub": SUBJECTS[stage],
                    }
                },
            }
        ],
    }
    # The CLI re-assumes the bootstrap roles from this session for a long deploy.
    assert role["MaxSessionDuration"] == 7200


def test_no_role_trusts_both_jobs(ci: Synth) -> None:
    # One role for both would let any run on main deploy prod without the production
    # environment's reviewers: the approval would be YAML, not IAM.
    trusted = [
        json.dumps(statement["Condition"])
        for role in ci.of_type("AWS::IAM::Role").values()
        for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    ]
    assert len(trusted) == 2
    assert not any(SUBJECTS["dev"] in t and SUBJECTS["prod"] in t for t in trusted)


@pytest.mark.parametrize(("stage", "other"), [("dev", "prod"), ("prod", "dev")])
def test_a_stages_role_reaches_its_own_stage_and_bootstrap_only(
    ci: Synth, stage: str, other: str
) -> None:
    by_sid = statements(ci, stage)
    assert set(by_sid) == {"AssumeCdkBootstrapRoles", "ReadStageOutputs", "InvokeMigrationFunction"}
    assert by_sid["AssumeCdkBootstrapRoles"] == {
        "Sid": "AssumeCdkBootstrapRoles",
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Resource": [
            f"arn:aws:iam::{ACCOUNT}:role/cdk-{QUALIFIERS[stage]}-{role}-role-{ACCOUNT}-{REGION}"
            for role in ("deploy", "file-publishing")
        ],
    }
    assert by_sid["ReadStageOutputs"]["Action"] == "cloudformation:DescribeStacks"
    assert by_sid["ReadStageOutputs"]["Resource"] == (
        f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/LambdaApp-{stage}/*"
    )
    assert by_sid["InvokeMigrationFunction"]["Action"] == "lambda:InvokeFunction"
    assert by_sid["InvokeMigrationFunction"]["Resource"] == (
        f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:LambdaApp-{stage}-MigrationsFunction*"
    )
    # nothing of the other stage: its stack, its function, its bootstrap roles
    policy = json.dumps(by_sid)
    assert f"LambdaApp-{other}" not in policy
    assert f"cdk-{QUALIFIERS[other]}-" not in policy
    assert ci.of_type("AWS::IAM::ManagedPolicy") == {}
    role = ci.resources[role_id(ci, stage)]["Properties"]
    assert "ManagedPolicyArns" not in role
    assert "Policies" not in role


def test_prod_deploys_with_its_own_bootstrap(dev: Synth, prod: Synth) -> None:
    # The roles of prod's bootstrap are the only ones that can deploy the prod stack's
    # template as synthesized, and only prod's GitHub role may assume them.
    assert QUALIFIERS["dev"] != QUALIFIERS["prod"]
    for synth in (dev, prod):
        version = synth.template["Parameters"]["BootstrapVersion"]["Default"]
        assert version == f"/cdk-bootstrap/{QUALIFIERS[synth.stage]}/version"
        manifest = json.loads((synth.outdir / "manifest.json").read_text())
        stack = manifest["artifacts"][f"LambdaApp-{synth.stage}"]["properties"]
        assert f"cdk-{QUALIFIERS[synth.stage]}-deploy-role-" in stack["assumeRoleArn"]


def test_the_release_check_pattern_matches_the_migration_function_only(
    ci: Synth, dev: Synth
) -> None:
    pattern = statements(ci, "dev")["InvokeMigrationFunction"]["Resource"]
    # CloudFormation names a function <stack>-<logical id>-<suffix>: the pattern must
    # match the migration function's logical ID, and no other function's.
    matching = [
        logical_id
        for logical_id in dev.of_type("AWS::Lambda::Function")
        if f"LambdaApp-dev-{logical_id}".startswith(pattern.split(":function:")[1][:-1])
    ]
    assert len(matching) == 1 and matching[0].startswith("MigrationsFunction")


def test_no_wildcard_action_or_whole_service_resource(ci: Synth) -> None:
    for stage in ROLES:
        for statement in statements(ci, stage).values():
            assert "*" not in statement["Action"]
            resources = statement["Resource"]
            resources = resources if isinstance(resources, list) else [resources]
            assert all(isinstance(r, str) and r.count("*") <= 1 for r in resources)
            assert all(r.endswith("*") or "*" not in r for r in resources)
            assert "*" not in resources


def test_the_role_arns_are_outputs(ci: Synth) -> None:
    for stage, output in (("dev", "DevDeployRoleArn"), ("prod", "ProdDeployRoleArn")):
        arn = {"Fn::GetAtt": [role_id(ci, stage), "Arn"]}
        assert ci.template["Outputs"][output]["Value"] == arn


def test_an_existing_provider_is_reused() -> None:
    # given an account whose GitHub OIDC provider another stack created
    existing = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC}"
    # when
    stack = GithubDeployStack(
        App(context=cdk_json_context()),  # its feature flags: partition literals
        "Ci",
        repository="octo-org/octo-repo",
        targets=[DeployTarget(stage="dev", stack_name="LambdaApp-dev", qualifier="hnb659fds")],
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
    assert trusted_subject(repository, "dev") == f"repo:{repository}:ref:refs/heads/main"


@pytest.mark.parametrize("repository", ["octo-repo", "octo-org/*", "o/r:ref:refs/heads/x", ""])
def test_a_repository_that_would_widen_the_trust_is_refused(repository: str) -> None:
    with pytest.raises(ValueError, match="owner/name"):
        trusted_subject(repository, "prod")


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
        (f"AwsSolutions-IAM5[Resource::{statements(ci, stage)[sid]['Resource']}]", True)
        for stage in ROLES
        for sid in ("ReadStageOutputs", "InvokeMigrationFunction")
    }


def test_ci_stack_passes_cfn_lint(ci: Synth) -> None:
    assert cfn_lint_errors(ci.template) == []
