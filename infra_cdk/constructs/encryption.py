"""The stack's customer-managed KMS key: its log groups, secrets and alarm topic at rest."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra_cdk.alarm_publisher import (
    cloudwatch_alarms,
    eventbridge_rules,
    this_accounts_alarms,
    this_accounts_rules,
)

# KMS's longest waiting period before it deletes a key (the key can be restored until then).
KEY_DELETION_WAIT = Duration.days(30)


class Encryption(Construct):
    """One key, rotated yearly, whose policy names every service that uses it.

    Account principals get the key only through IAM policies (CDK's default key policy
    delegates to the account): the functions' roles are granted kms:Decrypt through
    Secrets Manager alone, by the secrets' grant_read. Two AWS services act on the key
    themselves, each limited to this account: CloudWatch Logs, for the log groups, and
    CloudWatch alarms and EventBridge rules, which publish to the encrypted alarm topic.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        description: str,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)

        self.key = kms.Key(
            self,
            "Key",
            description=description,
            enable_key_rotation=True,
            # StageConfig.encryption_key_removal_policy: kept where what it encrypts is
            # kept (a deleted key would make it unreadable for good); otherwise deleted
            # after KMS's longest wait, which outlasts a deleted secret's recovery window.
            removal_policy=removal_policy,
            pending_window=KEY_DELETION_WAIT,
        )
        # AWS's documented statement for encrypted log groups. The encryption context
        # names the log group, so the service uses the key for this account's and
        # region's log groups only. It can't name them one by one: the log groups
        # reference the key, and a key policy naming them would be a cycle.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsEncryptsThisAccountsLogGroups",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                            service="logs",
                            resource="log-group",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    }
                },
            )
        )
        # CloudWatch publishes alarm notifications as its service principal, and SNS
        # encrypts each message under the topic's key on the publisher's behalf:
        # without this statement an alarm on the encrypted topic notifies nobody.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublishToTheEncryptedTopic",
                principals=[cloudwatch_alarms()],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions=this_accounts_alarms(stack),
            )
        )
        # The same for the EventBridge rule that forwards Secrets Manager's rotation
        # failures to the topic (infra_cdk/constructs/monitoring.py).
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="EventBridgeRulesPublishToTheEncryptedTopic",
                principals=[eventbridge_rules()],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions=this_accounts_rules(stack),
            )
        )
