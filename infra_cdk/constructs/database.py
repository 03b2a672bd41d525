"""PostgreSQL on RDS, its generated credentials, and the RDS Proxy the API connects through."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from constructs import Construct

from infra_cdk.nag import acknowledge

# The major version only: RDS applies minor upgrades itself (auto_minor_version_upgrade)
# and a pinned minor version would then fight them on the next deploy.
POSTGRES_VERSION = rds.PostgresEngineVersion.VER_17
DATABASE_NAME = "lambda_app"
# The owner of the schema. Alembic connects as this user with the generated secret;
# the API connects as the same user through the proxy with IAM tokens (the proxy
# holds the password, the API never sees it).
DATABASE_USER = "lambda_app"
DATABASE_PORT = 5432
LOG_EXPORTS = ("postgresql", "upgrade")


class Database(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        instance_identifier: str,
        instance_type: ec2.InstanceType,
        allocated_storage_gib: int,
        max_allocated_storage_gib: int,
        multi_az: bool,
        backup_retention: Duration,
        deletion_protection: bool,
        removal_policy: RemovalPolicy,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.database_name = DATABASE_NAME
        self.user = DATABASE_USER
        self.port = ec2.Port.tcp(DATABASE_PORT)

        instance_sg = ec2.SecurityGroup(
            self,
            "InstanceSecurityGroup",
            vpc=vpc,
            allow_all_outbound=False,
            description="PostgreSQL: reachable only from the proxy and the migration function",
        )
        # No rule yet: the stack grants each client explicitly.
        self.instance = rds.DatabaseInstance(
            self,
            "Instance",
            engine=rds.DatabaseInstanceEngine.postgres(version=POSTGRES_VERSION),
            instance_type=instance_type,
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[instance_sg],
            database_name=DATABASE_NAME,
            credentials=rds.Credentials.from_generated_secret(DATABASE_USER),
            storage_encrypted=True,  # KMS, the AWS-managed RDS key
            storage_type=rds.StorageType.GP3,
            allocated_storage=allocated_storage_gib,
            max_allocated_storage=max_allocated_storage_gib,
            multi_az=multi_az,
            backup_retention=backup_retention,
            deletion_protection=deletion_protection,
            removal_policy=removal_policy,
            auto_minor_version_upgrade=True,
            # Required by RDS for IAM database users; the proxy does the IAM part for
            # the API, but direct IAM logins (e.g. an operator) stay possible.
            iam_authentication=True,
            publicly_accessible=False,
            instance_identifier=instance_identifier,
            cloudwatch_logs_exports=list(LOG_EXPORTS),
            parameters={
                # PostgreSQL 15+ on RDS defaults to this already; stated so nobody relaxes it.
                "rds.force_ssl": "1",
                # Statements slower than 1 s are logged (parameters not included).
                "log_min_duration_statement": "1000",
            },
            enable_performance_insights=False,  # not on db.t4g.micro; CloudWatch metrics suffice
        )
        # The export log groups, made here with a retention before RDS writes to them
        # (cloudwatch_logs_retention would add a custom-resource Lambda to do the same).
        for export in LOG_EXPORTS:
            log_group = logs.LogGroup(
                self,
                f"{export.capitalize()}Logs",
                log_group_name=f"/aws/rds/instance/{instance_identifier}/{export}",
                retention=log_retention,
                removal_policy=RemovalPolicy.DESTROY,
            )
            self.instance.node.add_dependency(log_group)
        assert self.instance.secret is not None
        self.secret = self.instance.secret

        proxy_sg = ec2.SecurityGroup(
            self,
            "ProxySecurityGroup",
            vpc=vpc,
            allow_all_outbound=False,
            description="RDS Proxy: reachable only from the API function",
        )
        self.proxy = self.instance.add_proxy(
            "Proxy",
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[proxy_sg],
            secrets=[self.secret],  # the proxy logs in to PostgreSQL with these credentials
            require_tls=True,
            iam_auth=True,  # clients authenticate with IAM tokens, never with the password
            debug_logging=False,  # would log SQL text: never in a deployed stage
            # A Lambda invocation holds a connection for one request at most.
            idle_client_timeout=Duration.minutes(5),
            max_connections_percent=90,  # leave room for the migration function and operators
            borrow_timeout=Duration.seconds(10),
        )
        # add_proxy already opened the proxy -> instance path (PostgreSQL's port only),
        # the proxy's single way out.

        reasons = {
            "AwsSolutions-RDS11": (
                "The default port 5432 is kept on purpose: the instance is in isolated "
                "subnets and its security group admits only the proxy and the migration "
                "function, so a non-default port would add no protection."
            ),
            "AwsSolutions-SMG4": (
                "The generated master secret is read only by RDS Proxy and the "
                "migration function (and operators with Secrets Manager access); the API "
                "code never receives it, it signs in with 15-minute IAM tokens. It is "
                "rotated as a planned operation: automatic rotation while the proxy and a "
                "running migration hold connections is not set up here."
            ),
        }
        if not multi_az:
            reasons["AwsSolutions-RDS3"] = (
                "Single-AZ is this stage's choice (StageConfig.db_multi_az): a "
                "non-production database where an AZ outage may mean downtime, at half the cost."
            )
        if not deletion_protection:
            reasons["AwsSolutions-RDS10"] = (
                "Deletion protection is off for this stage (StageConfig."
                "db_deletion_protection) so a throwaway environment can be torn down with "
                "`cdk destroy`; production stages turn it on."
            )
        acknowledge(self.instance, reasons)
