"""The CDK app: `npx cdk synth|deploy -c stage=dev|prod` (cdk.json runs this module).

Synth is hermetic: account and region come from the standard CDK environment
variables (the CLI fills them in from your credentials) or fixed placeholders, and
nothing is looked up in AWS, so `make synth` works without credentials.

Context values (all optional but alarm_email in prod; an empty value counts as not given,
so the deploy workflow can pass every option, empty where the environment has none):
    stage                  dev (default) or prod
    release_id             e.g. the git SHA: forces the migration trigger to run
    alarm_email            subscribes this address to the alarm topic (required in prod:
                           StageConfig.alarm_email_required)
    first_superuser_email  creates a first superuser "admin" with a generated password
    availability_zones     two AZs, comma-separated (default: <region>a,<region>b; some
                           accounts lack one of those, e.g. ap-northeast-1b)
    github_repository      owner/name: adds LambdaApp-ci, the GitHub Actions deploy roles
    github_oidc_provider_arn  reuse the account's GitHub OIDC provider (one per account)
    cors_allowed_origins   browser origins allowed to call the API, comma-separated
                           (replaces the stage's StageConfig.cors_allowed_origins)
    domain_name            a custom domain for the API (docs/deploying.md, "Custom domain"),
                           with hosted_zone_id [+ hosted_zone_name] and/or certificate_arn,
                           and base_path (the API mapping key, e.g. v1)
    email_from             the SES sender, with frontend_url (https, where links point)
                           [+ email_identity=address|domain]: docs/deploying.md, "Email"
                           [+ require_verified_email=true: logins need a verified email]
    deployment_alarms      ignore: this deploy's traffic shift does not watch its alarms
                           (a hotfix while the serving version fails). CI never passes it,
                           so it lasts one deploy (docs/deploying.md, "Hotfix")
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aws_cdk import App, DefaultStackSynthesizer, Environment, Tags

from infra_cdk.ci import DeployTarget, GithubDeployStack
from infra_cdk.config import DEFAULT_STAGE, STAGES, StageConfig, stage_config
from infra_cdk.constructs.domain import CustomDomainConfig
from infra_cdk.constructs.email import EmailConfig
from infra_cdk.nag import add_checks
from infra_cdk.stack import LambdaAppStack
from lambda_app import workload
from lambda_app.core.origins import ANY_ORIGIN, parse_origins

# Only used when synthesizing without credentials; `cdk deploy` always knows the account.
PLACEHOLDER_ACCOUNT = "123456789012"
PLACEHOLDER_REGION = "us-east-1"


def stack_name(stage: str) -> str:
    return f"{workload.STACK_PREFIX}-{stage}"


def deployment_environment() -> Environment:
    return Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT") or PLACEHOLDER_ACCOUNT,
        region=os.environ.get("CDK_DEFAULT_REGION") or PLACEHOLDER_REGION,
    )


def _split(value: str | None) -> list[str] | None:
    return [item.strip() for item in value.split(",") if item.strip()] if value else None


def with_cors_origins(config: StageConfig, value: str | None) -> StageConfig:
    """`config` with the `cors_allowed_origins` context's origins, if given, checked now:
    a list the API would refuse at init fails the synth, not the deploy."""
    origins = config.cors_allowed_origins if value is None else value
    try:
        checked = parse_origins(origins)
    except ValueError as exc:
        raise ValueError(f"cors_allowed_origins: {exc}") from None
    if ANY_ORIGIN in checked:  # a deployed stage is never ENVIRONMENT=local
        raise ValueError("cors_allowed_origins: '*' is for local development only")
    return replace(config, cors_allowed_origins=checked)


def context_reader(app: App) -> Callable[[str], Any]:
    """`app`'s context values, with an empty one (`-c name=`) read as not given."""

    def context(name: str) -> Any:
        value = app.node.try_get_context(name)
        return None if value == "" else value

    return context


def checked_alarm_email(config: StageConfig, value: str | None) -> str | None:
    """The alarm address, which a stage may require: without it the synth stops here,
    before a deploy could drop the subscription an earlier deploy made."""
    if config.alarm_email_required and not value:
        raise ValueError(
            f"stage {config.name} needs -c alarm_email=<address>: its alarms must reach "
            'someone (docs/deploying.md, "Stack options in CI")'
        )
    return value


def ignores_deployment_alarms(value: str | None) -> bool:
    """`-c deployment_alarms=ignore`, or nothing: any other value stops the synth, so a
    misspelt override never deploys as if it had not been given."""
    if value is None:
        return False
    if str(value).strip().lower() != "ignore":
        raise ValueError(
            f"deployment_alarms={value!r}: the only value is 'ignore' (leave it out to "
            "watch the alarms)"
        )
    return True


def build_app(app: App) -> LambdaAppStack:
    """Add the stage's stack (chosen by the `stage` context) and cdk-nag to `app`."""
    context = context_reader(app)
    config = with_cors_origins(
        stage_config(context("stage") or DEFAULT_STAGE), context("cors_allowed_origins")
    )
    stack = LambdaAppStack(
        app,
        stack_name(config.name),
        config=config,
        env=deployment_environment(),
        synthesizer=DefaultStackSynthesizer(qualifier=config.bootstrap_qualifier),
        description=f"{workload.NAME} ({config.name}): users and authentication API",
        release_id=context("release_id"),
        alarm_email=checked_alarm_email(config, context("alarm_email")),
        first_superuser_email=context("first_superuser_email"),
        availability_zones=_split(context("availability_zones")),
        custom_domain=CustomDomainConfig.from_context(context),
        email=EmailConfig.from_context(context),
        ignore_deployment_alarms=ignores_deployment_alarms(context("deployment_alarms")),
    )
    # DBProxyTargetGroup takes no tags in CloudFormation (CDK would add them anyway).
    untaggable = ["AWS::RDS::DBProxyTargetGroup"]
    Tags.of(stack).add("app", workload.NAME, exclude_resource_types=untaggable)
    Tags.of(stack).add("stage", config.name, exclude_resource_types=untaggable)
    if repository := context("github_repository"):
        ci = GithubDeployStack(
            app,
            stack_name("ci"),
            repository=repository,
            targets=[
                DeployTarget(
                    stage=stage,
                    stack_name=stack_name(stage),
                    qualifier=STAGES[stage].bootstrap_qualifier,
                )
                for stage in STAGES
            ],
            oidc_provider_arn=context("github_oidc_provider_arn"),
            env=deployment_environment(),
            description=f"{workload.NAME}: the GitHub Actions deploy role (OIDC)",
        )
        Tags.of(ci).add("app", workload.NAME)
    add_checks(app)
    return stack


def main() -> None:
    app = App()
    build_app(app)
    app.synth()


if __name__ == "__main__":
    main()
