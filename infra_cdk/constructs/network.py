"""The VPC: isolated subnets only, and private paths to the AWS APIs the functions call."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra_cdk.confused_deputy import acting_for
from infra_cdk.constructs.log_groups import encrypted_log_group

# What the endpoints let through, the AWS calls of lambda_app (tests/infra/test_stack.py
# derives them from the code): reading the stack's secrets, and the rotation's steps
# (its function runs outside the VPC today, and would keep working inside it).
SECRETS_MANAGER_ACTIONS = (
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
)
# SES API v2 SendEmail (raw content included) is authorized as ses:SendEmail.
SES_ACTIONS = ("ses:SendEmail",)


class Network(Construct):
    """Two AZs of isolated subnets: no internet gateway, no NAT gateway.

    Nothing in the VPC needs the internet: the functions reach PostgreSQL (in the VPC)
    and Secrets Manager (through an interface endpoint), and with email the SES API
    (another interface endpoint, infra_cdk/constructs/email.py). Lambda ships their logs
    outside the VPC, and RDS IAM auth tokens are signed locally without an API call,
    so no CloudWatch Logs, STS or RDS endpoint is needed either. A NAT gateway would
    cost ~$33/month per AZ for traffic we don't have.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        availability_zones: list[str],
        flow_log_traffic: ec2.FlowLogTrafficType,
        log_retention: logs.RetentionDays,
        encryption_key: kms.IKey,
        ses_api_endpoint: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)

        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.40.0.0/16"),
            # Explicit AZs: synth never looks them up, so it needs no AWS credentials.
            availability_zones=availability_zones,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                )
            ],
        )
        self.subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)

        flow_logs = encrypted_log_group(
            self, "FlowLogs", retention=log_retention, encryption_key=encryption_key
        )
        # The role the flow log writes with: only VPC Flow Logs' deliveries for flow logs
        # of this account and region may assume it (AWS's confused-deputy conditions for
        # this role, both documented as sent). Not the flow log's own ARN: the role
        # exists before the flow log and its id.
        stack = Stack.of(self)
        flow_log_role = iam.Role(
            self,
            "FlowLogRole",
            assumed_by=iam.ServicePrincipal(
                "vpc-flow-logs.amazonaws.com",
                conditions=acting_for(
                    stack,
                    stack.format_arn(
                        service="ec2",
                        resource="vpc-flow-log",
                        resource_name="*",
                        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                    ),
                ),
            ),
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs, flow_log_role),
            traffic_type=flow_log_traffic,
        )

        # The functions fetch the JWT, database and superuser secrets at cold start.
        # Closed by default: the stack opens it to each function that needs it, and its
        # policy (allow_through_secrets_manager) to the stack's own secrets.
        self.secrets_manager_endpoint = self.vpc.add_interface_endpoint(
            "SecretsManager",
            service=ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
            subnets=self.subnets,
            private_dns_enabled=True,
            open=False,
        )

        # Only with email (-c email_from): the SES API (v1 and v2, `email.<region>`), not
        # `email-smtp`, which speaks SMTP only. Opened by the stack to the API function,
        # and its policy (allow_sending_through_ses) to the stack's identity.
        self.ses_endpoint: ec2.InterfaceVpcEndpoint | None = None
        if ses_api_endpoint:
            self.ses_endpoint = self.vpc.add_interface_endpoint(
                "Ses",
                service=ec2.InterfaceVpcEndpointAwsService.EMAIL,
                subnets=self.subnets,
                private_dns_enabled=True,
                open=False,
            )

    def allow_through_secrets_manager(self, secret_arns: list[str]) -> None:
        """Replace the endpoint's default policy (any call, by anyone, on any account's
        secrets) with the app's calls on these secrets, by this account's principals.
        IAM still decides which function reads which of them."""
        self.secrets_manager_endpoint.add_to_policy(
            _this_accounts(self, SECRETS_MANAGER_ACTIONS, secret_arns, "StackSecretsOnly")
        )

    def allow_sending_through_ses(self, resource_arns: list[str]) -> None:
        """The same for the SES endpoint: sending from these resources (the identity and
        its configuration set), by this account's principals."""
        assert self.ses_endpoint is not None, "the SES endpoint is made with ses_api_endpoint"
        self.ses_endpoint.add_to_policy(
            _this_accounts(self, SES_ACTIONS, resource_arns, "SendFromTheStacksIdentityOnly")
        )


def _this_accounts(
    scope: Construct, actions: tuple[str, ...], resources: list[str], sid: str
) -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid=sid,
        principals=[iam.AnyPrincipal()],
        actions=list(actions),
        resources=resources,
        # A principal of another account, with its own credentials, gets nothing through.
        conditions={"StringEquals": {"aws:PrincipalAccount": Stack.of(scope).account}},
    )
