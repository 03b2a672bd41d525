"""The roles GitHub Actions deploys with: OpenID Connect, no stored keys (docs/deploying.md, CI/CD).

An optional stack, `LambdaApp-ci`, that infra_cdk/app.py adds only with
`-c github_repository=owner/name`. It holds the account's GitHub OIDC provider and one
role per stage that only one job of that repository can assume: dev's only from its main
branch (the dev deploy job), prod's only from its `production` environment (the prod
deploy job, which waits for a reviewer's approval). So a run on main without that
approval cannot assume prod's role, whatever its YAML says.

A role deploys nothing itself: `cdk deploy` assumes the CDK bootstrap roles, which hold
the deployment permissions. Each stage has its own bootstrap (prod's own qualifier,
StageConfig.bootstrap_qualifier), and each role may assume only its stage's. The only
other grant is its stage's release check (`python -m lambda_app release --action check`):
reading the stage's outputs and invoking its migration function, which the bootstrap
roles cannot do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import ArnFormat, CfnOutput, Duration, Stack
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra_cdk.nag import acknowledge

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_AUDIENCE = "sts.amazonaws.com"
# The branch the dev job deploys from, and the environment of the prod job (its
# required reviewers are set in the repository's settings). .github/workflows/deploy.yml
# uses exactly these; tests/test_workflows.py keeps the two in step.
DEPLOY_BRANCH = "main"
PRODUCTION_ENVIRONMENT = "production"
# `owner/name`, or the immutable form `owner@ORG_ID/name@REPO_ID` that repositories
# created since July 2026 (and those opted in) put in their tokens' `sub` claim.
REPOSITORY = re.compile(r"[A-Za-z0-9-]+(@\d+)?/[A-Za-z0-9._-]+(@\d+)?")
# The bootstrap roles `cdk deploy` assumes: the deploy role (change sets, the bootstrap
# version) and the file-publishing role (the Lambda bundles to the staging bucket). Not
# the lookup role (synth is hermetic), nor image publishing (no Docker assets).
BOOTSTRAP_ROLES = ("deploy", "file-publishing")
# CloudFormation names a function `<stack>-<logical id>-<suffix>`; the migration
# function's logical ID starts with its construct path, Migrations/Function.
MIGRATION_FUNCTION_ID = "MigrationsFunction"
# A first deploy of prod (Multi-AZ database, proxy) can take most of an hour. The CLI
# re-assumes the bootstrap roles from this session, so this session must outlast it.
MAX_SESSION = Duration.hours(2)


@dataclass(frozen=True, kw_only=True)
class DeployTarget:
    """A stage one role deploys: its stack, and the CDK bootstrap (qualifier) it uses."""

    stage: str
    stack_name: str
    qualifier: str


# The job of .github/workflows/deploy.yml that deploys each stage, as its token's `sub`
# names it: dev's job runs on main with no environment, prod's in the environment.
JOB_SUBJECTS = {
    "dev": f"ref:refs/heads/{DEPLOY_BRANCH}",
    "prod": f"environment:{PRODUCTION_ENVIRONMENT}",
}


def role_secret(stage: str) -> str:
    """The repository secret holding `stage`'s role ARN (the workflow's role-to-assume)."""
    return f"AWS_DEPLOY_ROLE_ARN_{stage.upper()}"


def trusted_subject(repository: str, stage: str) -> str:
    """The one `sub` claim `stage`'s role trusts."""
    if not REPOSITORY.fullmatch(repository):
        raise ValueError(f"github_repository must be owner/name, not {repository!r}")
    return f"repo:{repository}:{JOB_SUBJECTS[stage]}"


class GithubDeployStack(Stack):
    """The GitHub OIDC provider and one deploy role per stage of one repository."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        repository: str,
        targets: Sequence[DeployTarget],
        oidc_provider_arn: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)

        # An account has one provider per URL: reuse it if another stack made it.
        provider = (
            iam.OidcProviderNative.from_oidc_provider_arn(self, "GithubOidc", oidc_provider_arn)
            if oidc_provider_arn
            else iam.OidcProviderNative(
                self,
                "GithubOidc",
                url=f"https://{GITHUB_OIDC_HOST}",
                client_ids=[GITHUB_AUDIENCE],
            )
        )
        self.roles = {
            target.stage: self._deploy_role(provider, repository, target) for target in targets
        }

    def _deploy_role(
        self, provider: iam.IOidcProvider, repository: str, target: DeployTarget
    ) -> iam.Role:
        """The role of one stage's job: it trusts that job alone and reaches that stage alone."""
        stage = target.stage.capitalize()
        role = iam.Role(
            self,
            f"{stage}DeployRole",
            description=(
                f"GitHub Actions of {repository}: cdk deploy of {target.stack_name} and its "
                "release check"
            ),
            max_session_duration=MAX_SESSION,
            assumed_by=iam.OpenIdConnectPrincipal(
                provider,
                conditions={
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": GITHUB_AUDIENCE,
                        f"{GITHUB_OIDC_HOST}:sub": trusted_subject(repository, target.stage),
                    }
                },
            ),
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="AssumeCdkBootstrapRoles",
                actions=["sts:AssumeRole"],
                resources=[self._bootstrap_role_arn(target.qualifier, r) for r in BOOTSTRAP_ROLES],
            )
        )
        stack_arn = self._stack_arn(target.stack_name)
        function_arn = self._migration_function_arn(target.stack_name)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadStageOutputs",
                actions=["cloudformation:DescribeStacks"],
                resources=[stack_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="InvokeMigrationFunction",
                actions=["lambda:InvokeFunction"],
                resources=[function_arn],
            )
        )
        acknowledge(
            role,
            {
                f"AwsSolutions-IAM5[Resource::{stack_arn}]": (
                    "The wildcard is the unique ID CloudFormation appends to the stack's "
                    "ARN when it creates the stack; the stack's name is fixed, so this is "
                    "one stack, read-only (DescribeStacks, for the release check)."
                ),
                f"AwsSolutions-IAM5[Resource::{function_arn}]": (
                    "The wildcard is the random suffix CloudFormation gives the migration "
                    "function's name (stack name and logical ID are fixed): this stage's "
                    "migration function, invoked by the release check, and nothing else."
                ),
            },
        )
        CfnOutput(
            self,
            f"{stage}DeployRoleArn",
            value=role.role_arn,
            description=f"The repository secret {role_secret(target.stage)} (role-to-assume)",
        )
        return role

    def _bootstrap_role_arn(self, qualifier: str, role: str) -> str:
        name = f"cdk-{qualifier}-{role}-role-{self.account}-{self.region}"
        return self.format_arn(service="iam", region="", resource="role", resource_name=name)

    def _stack_arn(self, stack_name: str) -> str:
        return self.format_arn(
            service="cloudformation", resource="stack", resource_name=f"{stack_name}/*"
        )

    def _migration_function_arn(self, stack_name: str) -> str:
        return self.format_arn(
            service="lambda",
            resource="function",
            resource_name=f"{stack_name}-{MIGRATION_FUNCTION_ID}*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,  # function:NAME
        )
