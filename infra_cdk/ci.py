"""The role GitHub Actions deploys with: OpenID Connect, no stored keys (docs/deploying.md, CI/CD).

An optional stack, `LambdaApp-ci`, that infra_cdk/app.py adds only with
`-c github_repository=owner/name`. It holds the account's GitHub OIDC provider and one
role that only workflow runs of that repository can assume, and only from its main
branch (the dev deploy job) or its `production` environment (the prod deploy job, which
waits for a reviewer's approval).

The role deploys nothing itself: `cdk deploy` assumes the CDK bootstrap roles, which
hold the deployment permissions (the bootstrap stack, reviewed once per account). The
only other grant is the release check (`python -m lambda_app release --action check`),
which runs as this role: reading the stages' outputs and invoking their migration
function, which the bootstrap roles cannot do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from aws_cdk import ArnFormat, CfnOutput, DefaultStackSynthesizer, Duration, Stack
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


def trusted_subjects(repository: str) -> list[str]:
    """The `sub` claims the role trusts: main's runs, and the production environment's."""
    if not REPOSITORY.fullmatch(repository):
        raise ValueError(f"github_repository must be owner/name, not {repository!r}")
    return [
        f"repo:{repository}:ref:refs/heads/{DEPLOY_BRANCH}",
        f"repo:{repository}:environment:{PRODUCTION_ENVIRONMENT}",
    ]


class GithubDeployStack(Stack):
    """The GitHub OIDC provider and the deploy role of one repository."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        repository: str,
        deployed_stacks: Sequence[str],
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
        self.role = iam.Role(
            self,
            "DeployRole",
            description=f"GitHub Actions of {repository}: cdk deploy and the release check",
            max_session_duration=MAX_SESSION,
            assumed_by=iam.OpenIdConnectPrincipal(
                provider,
                conditions={
                    "StringEquals": {
                        f"{GITHUB_OIDC_HOST}:aud": GITHUB_AUDIENCE,
                        f"{GITHUB_OIDC_HOST}:sub": trusted_subjects(repository),
                    }
                },
            ),
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="AssumeCdkBootstrapRoles",
                actions=["sts:AssumeRole"],
                resources=[self._bootstrap_role_arn(role) for role in BOOTSTRAP_ROLES],
            )
        )
        stack_arns = [self._stack_arn(name) for name in deployed_stacks]
        function_arns = [self._migration_function_arn(name) for name in deployed_stacks]
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadStageOutputs",
                actions=["cloudformation:DescribeStacks"],
                resources=stack_arns,
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="InvokeMigrationFunction",
                actions=["lambda:InvokeFunction"],
                resources=function_arns,
            )
        )
        acknowledge(
            self.role,
            {
                **{
                    f"AwsSolutions-IAM5[Resource::{arn}]": (
                        "The wildcard is the unique ID CloudFormation appends to the stack's "
                        "ARN when it creates the stack; the stack's name is fixed, so this is "
                        "one stack, read-only (DescribeStacks, for the release check)."
                    )
                    for arn in stack_arns
                },
                **{
                    f"AwsSolutions-IAM5[Resource::{arn}]": (
                        "The wildcard is the random suffix CloudFormation gives the migration "
                        "function's name (stack name and logical ID are fixed): this stage's "
                        "migration function, invoked by the release check, and nothing else."
                    )
                    for arn in function_arns
                },
            },
        )
        CfnOutput(
            self,
            "DeployRoleArn",
            value=self.role.role_arn,
            description="The repository variable AWS_DEPLOY_ROLE_ARN (role-to-assume)",
        )

    def _bootstrap_role_arn(self, role: str) -> str:
        qualifier = DefaultStackSynthesizer.DEFAULT_QUALIFIER
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
