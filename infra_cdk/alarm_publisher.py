"""CloudWatch alarms as the AWS service that publishes their notifications.

Two policies admit it, each with the same conditions, so neither lets another account's
alarms (a confused deputy) act through it: the alarm topic's (sns:Publish) and the
key's that encrypts the topic (the messages SNS encrypts on the publisher's behalf).
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam

CLOUDWATCH = "cloudwatch.amazonaws.com"


def cloudwatch_alarms() -> iam.ServicePrincipal:
    return iam.ServicePrincipal(CLOUDWATCH)


def this_accounts_alarms(stack: Stack) -> dict[str, dict[str, str]]:
    """Conditions for alarms of `stack`'s account and region only.

    Not this stack's alarms by name: CloudFormation generates their names.
    """
    return {
        "StringEquals": {"aws:SourceAccount": stack.account},
        "ArnLike": {
            "aws:SourceArn": stack.format_arn(
                service="cloudwatch",
                resource="alarm",
                resource_name="*",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
        },
    }
