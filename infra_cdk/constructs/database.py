"""PostgreSQL on RDS, its generated credentials, and the RDS Proxy the API connects through."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from constructs import Construct

from infra_cdk.confused_deputy import acting_for
from infra_cdk.constructs.log_groups import encrypted_log_group
from infra_cdk.nag import acknowledge, managed_policy_finding, skip_checkov
from lambda_app import workload

# The major version only: RDS applies minor upgrades itself (auto_minor_version_upgrade)
# and a pinned minor version would then fight them on the next deploy.
POSTGRES_VERSION = rds.PostgresEngineVersion.VER_17
DATABASE_NAME = workload.DATABASE_NAME
# The master user, owner of the schema: only the migration function connects as it,
# directly to the instance, with the generated secret.
DATABASE_OWNER = workload.DATABASE_OWNER
# The API's own role (rows of the app's tables, nothing else), created by a migration
# with the same constant, so the grant here and the role there cannot drift apart.
# It signs in to the proxy with IAM tokens, and the proxy to PostgreSQL the same way.
API_DATABASE_USER = workload.API_ROLE
DATABASE_PORT = 5432
LOG_EXPORTS = ("postgresql", "upgrade")
# Enhanced monitoring: the instance's OS metrics (memory, swap, processes) every minute.
MONITORING_INTERVAL = Duration.seconds(60)
# Of max_connections, the share RDS Proxy may open for the API (MaxConnectionsPercent).
# The rest must hold what connects around the proxy: the slots PostgreSQL and RDS keep
# for superusers (superuser_reserved_connections, 3, and rds.rds_superuser_reserved_
# connections, 2: the API's role can never use them), the migration function's two (its
# advisory lock's and its run's, as the master user) and an operator's psql.
PROXY_MAX_CONNECTIONS_PERCENT = 90
CONNECTIONS_AROUND_THE_PROXY = 3 + 2 + 2 + 1


def proxy_pool_size(max_connections: int) -> int:
    """The database connections RDS Proxy may open, refused if it leaves too few."""
    pool = max_connections * PROXY_MAX_CONNECTIONS_PERCENT // 100
    if max_connections - pool < CONNECTIONS_AROUND_THE_PROXY:
        raise ValueError(
            f"max_connections {max_connections} leaves {max_connections - pool} connections "
            f"beside the proxy's {PROXY_MAX_CONNECTIONS_PERCENT}%, fewer than the "
            f"{CONNECTIONS_AROUND_THE_PROXY} reserved slots, migration and operator need"
        )
    return pool


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
        max_connections: int,
        allocated_storage_gib: int,
        max_allocated_storage_gib: int,
        multi_az: bool,
        backup_retention: Duration,
        deletion_protection: bool,
        removal_policy: RemovalPolicy,
        log_retention: logs.RetentionDays,
        encryption_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.database_name = DATABASE_NAME
        self.api_user = API_DATABASE_USER
        self.port = ec2.Port.tcp(DATABASE_PORT)
        self.max_connections = max_connections
        proxy_pool_size(max_connections)  # refuses a value that leaves too little beside it

        # Enhanced monitoring's role, made here rather than by CDK so that its cdk-nag
        # acknowledgment (below) can name it.
        # Only Enhanced Monitoring for this instance may assume it: the conditions the RDS
        # user guide gives for this role ("Protecting against the confused deputy
        # problem"). The instance's name is fixed, so its ARN is known before it exists.
        stack = Stack.of(self)
        monitoring_role = iam.Role(
            self,
            "MonitoringRole",
            assumed_by=iam.ServicePrincipal(
                "monitoring.rds.amazonaws.com",
                conditions=acting_for(
                    stack,
                    stack.format_arn(
                        service="rds",
                        resource="db",
                        resource_name=instance_identifier,
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    ),
                ),
            ),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "service-role/AmazonRDSEnhancedMonitoringRole"
                )
            ],
        )
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
            credentials=rds.Credentials.from_generated_secret(
                DATABASE_OWNER, encryption_key=encryption_key
            ),
            # The AWS-managed RDS key: moving an existing instance to another key means
            # replacing it from a snapshot, not an update.
            storage_encrypted=True,
            storage_type=rds.StorageType.GP3,
            allocated_storage=allocated_storage_gib,
            max_allocated_storage=max_allocated_storage_gib,
            multi_az=multi_az,
            backup_retention=backup_retention,
            deletion_protection=deletion_protection,
            removal_policy=removal_policy,
            auto_minor_version_upgrade=True,
            # RDS Proxy signs in to PostgreSQL with IAM as the API's user (end-to-end
            # IAM authentication), which needs IAM database authentication on.
            iam_authentication=True,
            publicly_accessible=False,
            instance_identifier=instance_identifier,
            cloudwatch_logs_exports=list(LOG_EXPORTS),
            parameters={
                # PostgreSQL 15+ on RDS defaults to this already; stated so nobody relaxes it.
                "rds.force_ssl": "1",
                # Statements slower than 1 s are logged (parameters not included).
                "log_min_duration_statement": "1000",
                # Pinned, not RDS's memory formula: StageConfig.db_max_connections says why.
                "max_connections": str(max_connections),
            },
            enable_performance_insights=False,  # not on db.t4g.micro; CloudWatch metrics suffice
            monitoring_interval=MONITORING_INTERVAL,
            monitoring_role=monitoring_role,
        )
        # The export log groups, made here with a retention before RDS writes to them
        # (cloudwatch_logs_retention would add a custom-resource Lambda to do the same).
        for export in LOG_EXPORTS:
            log_group = encrypted_log_group(
                self,
                f"{export.capitalize()}Logs",
                retention=log_retention,
                encryption_key=encryption_key,
                log_group_name=f"/aws/rds/instance/{instance_identifier}/{export}",
            )
            self.instance.node.add_dependency(log_group)
        assert self.instance.secret is not None
        self.secret = self.instance.secret
        # The master password of a kept instance (and of its final snapshot) lives only in
        # this secret: kept with them, or a restore's only way in is a password reset.
        # (`instance.secret` is the secret's attachment to the instance; the generated
        # secret itself is the instance's child "Secret".)
        if removal_policy != RemovalPolicy.DESTROY:
            generated = self.instance.node.find_child("Secret")
            assert isinstance(generated, rds.DatabaseSecret)
            generated.apply_removal_policy(RemovalPolicy.RETAIN)

        proxy_sg = ec2.SecurityGroup(
            self,
            "ProxySecurityGroup",
            vpc=vpc,
            allow_all_outbound=False,
            description="RDS Proxy: reachable only from the API function",
        )
        # End-to-end IAM: a client signs in to the proxy with an IAM token, and the proxy
        # signs in to PostgreSQL as the same user with its own role's IAM token. The
        # proxy holds no password, so it can sign in only as users that have `rds_iam`
        # and that this role may connect as: the API's user, never the schema's owner.
        # No aws:SourceAccount/SourceArn here: RDS Proxy's documentation gives its role a
        # bare trust and names no condition key it sends, and a key it doesn't send would
        # leave the proxy unable to sign in. The role can do one thing, rds-db:connect as
        # the API's user on this instance, and only this account can hand it to a proxy
        # (iam:PassRole). tests/infra/test_stack.py lists this exception.
        proxy_role = iam.Role(
            self, "ProxyRole", assumed_by=iam.ServicePrincipal("rds.amazonaws.com")
        )
        proxy_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["rds-db:connect"],
                resources=[
                    Stack.of(self).format_arn(
                        service="rds-db",
                        resource="dbuser",
                        resource_name=f"{self.instance.instance_resource_id}/{API_DATABASE_USER}",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        self.proxy = self.instance.add_proxy(
            "Proxy",
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[proxy_sg],
            role=proxy_role,
            default_auth_scheme=rds.DefaultAuthScheme.IAM_AUTH,
            require_tls=True,
            debug_logging=False,  # would log SQL text: never in a deployed stage
            # A Lambda invocation holds a connection for one request at most.
            idle_client_timeout=Duration.minutes(5),
            max_connections_percent=PROXY_MAX_CONNECTIONS_PERCENT,
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
                "The generated master secret is read only by the migration function (and "
                "operators with Secrets Manager access): the proxy signs in with IAM and "
                "the API never receives it. It is rotated as a planned operation: automatic "
                "rotation while a migration holds a connection is not set up here."
            ),
        }
        checkov_reasons: dict[str, str] = {}
        if not multi_az:
            reasons["AwsSolutions-RDS3"] = checkov_reasons["CKV_AWS_157"] = (
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
        if checkov_reasons:
            skip_checkov(self.instance, checkov_reasons)
        acknowledge(
            monitoring_role,
            {
                managed_policy_finding("AmazonRDSEnhancedMonitoringRole"): (
                    "AWS-maintained policy for enhanced monitoring: RDS may create and write "
                    "the RDSOSMetrics log group (log groups named RDS*) and nothing else. A "
                    "copy as a customer policy would only drift from it."
                )
            },
        )
