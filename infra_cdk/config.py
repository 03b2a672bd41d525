"""Everything that differs between stages, chosen in one place.

Constructs take these values as keyword-only parameters; none of them looks at the
stage name. Adding a stage means adding one `StageConfig` here.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import DefaultStackSynthesizer, Duration, RemovalPolicy
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs

DEFAULT_STAGE = "dev"
# Prod's own CDK bootstrap (at most 10 letters and digits): docs/deploying.md bootstraps it.
PROD_BOOTSTRAP_QUALIFIER = "lambdaprod"


@dataclass(frozen=True, kw_only=True)
class StageConfig:
    name: str
    # The CDK bootstrap the stage deploys with (`cdk bootstrap --qualifier`): prod has its
    # own, so the roles that deploy dev (and dev's GitHub role) can't deploy prod.
    bootstrap_qualifier: str
    # --- database ---------------------------------------------------------------
    db_instance_type: ec2.InstanceType
    db_allocated_storage_gib: int
    db_max_allocated_storage_gib: int
    db_multi_az: bool
    db_backup_retention: Duration
    db_deletion_protection: bool
    # SNAPSHOT keeps a final snapshot when the stack (or the instance) is deleted.
    db_removal_policy: RemovalPolicy
    # max_connections, pinned in the parameter group; the connection alarms, the proxy's
    # pool and the API's reserved concurrency are reckoned from it. RDS's default is
    # LEAST(DBInstanceClassMemory/9531392, 5000), where DBInstanceClassMemory is what is
    # left of the memory after the OS and RDS's own processes: a db.t4g.micro reports
    # about 80-87, not the ~110 its nominal 1 GiB suggests, a db.t4g.small about 190.
    # Pinned at or a little below that, so the figure the alarms assume is the one
    # PostgreSQL enforces and no more connections are allowed than the memory carries.
    # A new instance class needs its own value (static: applied at the next reboot).
    db_max_connections: int
    # --- secrets ----------------------------------------------------------------
    # The first superuser's password when the stack drops it (a deploy without
    # `-c first_superuser_email`) or is deleted: RETAIN keeps the only copy of it.
    superuser_secret_removal_policy: RemovalPolicy
    # The stack's KMS key (logs, secrets, alarm topic). DESTROY schedules its deletion
    # (KMS's longest waiting period, 30 days, outlasting any secret's recovery window)
    # when nothing the stage keeps is encrypted with it; RETAIN where logs and secrets
    # outlive the stack and stay readable only with it.
    encryption_key_removal_policy: RemovalPolicy
    # --- API function -----------------------------------------------------------
    # None: no reservation. New accounts have a low concurrency quota and Lambda
    # refuses reservations that leave fewer than 100 unreserved executions.
    api_reserved_concurrency: int | None
    api_snap_start: bool
    api_throttle_rate_per_second: int
    api_throttle_burst: int
    # How CodeDeploy shifts the `live` alias to a new version (infra_cdk/constructs/deployment.py).
    api_deployment_config: codedeploy.ILambdaDeploymentConfig
    # Browser origins allowed to call the API (CORS_ALLOWED_ORIGINS; the app answers CORS,
    # API Gateway doesn't). `-c cors_allowed_origins=https://a,https://b` overrides it.
    cors_allowed_origins: tuple[str, ...] = ()
    # --- observability ----------------------------------------------------------
    # The synth stops without `-c alarm_email`: a stage nobody watches, or a deploy that
    # forgot the option and would unsubscribe the address an earlier one set.
    alarm_email_required: bool
    log_retention: logs.RetentionDays
    # What becomes of every log group of the stack when the stack (or the group) goes.
    # RETAIN keeps a deleted stage's logs readable beside its final snapshot and secrets;
    # re-creating the same stack then needs the named ones (/aws/rds/instance/...) gone.
    log_removal_policy: RemovalPolicy
    flow_log_traffic: ec2.FlowLogTrafficType


STAGES: dict[str, StageConfig] = {
    "dev": StageConfig(
        name="dev",
        bootstrap_qualifier=DefaultStackSynthesizer.DEFAULT_QUALIFIER,
        db_instance_type=ec2.InstanceType.of(
            ec2.InstanceClass.BURSTABLE4_GRAVITON, ec2.InstanceSize.MICRO
        ),
        db_allocated_storage_gib=20,
        db_max_allocated_storage_gib=50,
        db_multi_az=False,
        db_backup_retention=Duration.days(1),
        db_deletion_protection=False,
        db_removal_policy=RemovalPolicy.DESTROY,
        db_max_connections=80,
        superuser_secret_removal_policy=RemovalPolicy.DESTROY,
        encryption_key_removal_policy=RemovalPolicy.DESTROY,
        api_reserved_concurrency=None,
        api_snap_start=False,
        api_throttle_rate_per_second=20,
        api_throttle_burst=40,
        # No one to protect from a bad version, and a deploy should not wait five minutes.
        api_deployment_config=codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE,
        alarm_email_required=False,
        log_retention=logs.RetentionDays.TWO_WEEKS,
        log_removal_policy=RemovalPolicy.DESTROY,
        flow_log_traffic=ec2.FlowLogTrafficType.REJECT,
    ),
    "prod": StageConfig(
        name="prod",
        bootstrap_qualifier=PROD_BOOTSTRAP_QUALIFIER,
        db_instance_type=ec2.InstanceType.of(
            ec2.InstanceClass.BURSTABLE4_GRAVITON, ec2.InstanceSize.SMALL
        ),
        db_allocated_storage_gib=20,
        db_max_allocated_storage_gib=200,
        db_multi_az=True,
        db_backup_retention=Duration.days(14),
        db_deletion_protection=True,
        db_removal_policy=RemovalPolicy.SNAPSHOT,
        db_max_connections=180,
        superuser_secret_removal_policy=RemovalPolicy.RETAIN,
        encryption_key_removal_policy=RemovalPolicy.RETAIN,
        # Caps the database connections the API can need (one per running request) below
        # the 162 the proxy may open (90% of db_max_connections), so the connection
        # alarms are reckoned from it, and keeps one runaway client from starving every
        # other function in the account. The account needs a concurrency limit of at least
        # 200 for it (docs/deploying.md, "Prerequisites").
        api_reserved_concurrency=100,
        api_snap_start=True,
        api_throttle_rate_per_second=200,
        api_throttle_burst=400,
        # 10% of requests go to the new version for five minutes, watched by its alarms.
        api_deployment_config=codedeploy.LambdaDeploymentConfig.CANARY_10_PERCENT_5_MINUTES,
        alarm_email_required=True,
        log_retention=logs.RetentionDays.THREE_MONTHS,
        log_removal_policy=RemovalPolicy.RETAIN,
        flow_log_traffic=ec2.FlowLogTrafficType.ALL,
    ),
}


def stage_config(stage: str) -> StageConfig:
    try:
        return STAGES[stage]
    except KeyError:
        raise ValueError(f"unknown stage {stage!r}: use one of {sorted(STAGES)}") from None
