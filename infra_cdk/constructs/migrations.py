"""The migration function, and the trigger that runs it during `cdk deploy`."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, triggers
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra_cdk.constructs.vpc_function import vpc_function
from infra_cdk.nag import ENVIRONMENT_HOLDS_NO_SECRETS, skip_checkov
from lambda_app import workload
from lambda_app.migrate.deadline import MIGRATION_FUNCTION_TIMEOUT_SECONDS

MIGRATION_HANDLER = "lambda_app.handlers.migrate.handler"
# The app's constant, which the run's deadline is measured against: written once, so the
# function's timeout and what the code expects of it can't drift apart. The trigger's
# call waits a little longer than the function may run, and both fit in the 15 minutes
# CDK's trigger provider function is allowed.
MIGRATION_TIMEOUT = Duration.seconds(MIGRATION_FUNCTION_TIMEOUT_SECONDS)
TRIGGER_TIMEOUT = Duration.seconds(MIGRATION_FUNCTION_TIMEOUT_SECONDS + 30)
# Alembic and the superuser's Argon2 hash are light; 512 MB gives them CPU enough.
MIGRATION_MEMORY_MB = 512


class Migrations(Construct):
    """`alembic upgrade head` as a Lambda function, run by a CloudFormation trigger.

    The trigger invokes the function synchronously (an empty event means "upgrade")
    whenever the function's version changes: new code or migrations (its asset, the
    migration flavour of the bundle, holds both), new settings, or a new `release_id`.
    A failed migration fails the trigger, which fails the deploy and rolls the stack
    back before the new API code is live.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        environment: dict[str, str],
        log_retention: logs.RetentionDays,
        release_id: str | None,
        encryption_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)

        if release_id:
            # A new value makes a new function version, which re-runs the trigger.
            environment = {**environment, "RELEASE_ID": release_id}
        parts = vpc_function(
            self,
            description=f"{workload.NAME} database migrations (alembic upgrade head)",
            security_group_description=(
                "Migration function: out to PostgreSQL and Secrets Manager endpoint only"
            ),
            handler=MIGRATION_HANDLER,
            code=code,
            memory_size=MIGRATION_MEMORY_MB,
            timeout=MIGRATION_TIMEOUT,
            vpc=vpc,
            subnets=subnets,
            log_retention=log_retention,
            encryption_key=encryption_key,
            environment=environment,
            # No reserved concurrency: Lambda refuses any reservation in accounts with a
            # small concurrency quota. Concurrent runs (a CI `release` during a deploy)
            # are serialized by the migration's PostgreSQL advisory lock instead.
            retry_attempts=0,  # async invocations: a failed migration is not retried blindly
            # Superseded versions are deleted once a deploy succeeds (a failed one rolls back
            # to them): no pile of old versions, each holding a copy of the bundle.
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY),
        )
        self.function, self.security_group = parts.function, parts.security_group
        self.log_group = parts.log_group
        skip_checkov(
            self.function,
            {
                "CKV_AWS_116": (
                    "Invoked synchronously (RequestResponse) by the deploy trigger and by the "
                    "`release` command, which both see the failure. A dead-letter queue only "
                    "catches asynchronous invocations, and a failed migration must be "
                    "looked at, not replayed from a queue."
                ),
                "CKV_AWS_115": (
                    "No reserved concurrency: Lambda refuses any reservation in accounts with "
                    "a small concurrency quota. Concurrent runs (a `release` during a deploy) "
                    "are serialized by the migration's PostgreSQL advisory lock instead."
                ),
                "CKV_AWS_173": ENVIRONMENT_HOLDS_NO_SECRETS,
            },
        )
        self.trigger = triggers.Trigger(
            self,
            "Run",
            handler=self.function,
            invocation_type=triggers.InvocationType.REQUEST_RESPONSE,
            timeout=TRIGGER_TIMEOUT,
            execute_on_handler_change=True,
        )
