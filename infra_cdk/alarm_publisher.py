"""The AWS services that publish to the alarm topic: CloudWatch alarms, and EventBridge
rules (Secrets Manager's rotation failures).

Two policies admit each, with conditions on the publisher, so neither lets another
account's alarms or rules (a confused deputy) act through it: the alarm topic's
(sns:Publish) and the key's that encrypts the topic (the messages SNS encrypts on the
publisher's behalf).
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam

from infra_cdk.confused_deputy import acting_for

CLOUDWATCH = "cloudwatch.amazonaws.com"
EVENTBRIDGE = "events.amazonaws.com"


def cloudwatch_alarms() -> iam.ServicePrincipal:
    return iam.ServicePrincipal(CLOUDWATCH)


def this_accounts_alarms(stack: Stack) -> dict[str, dict[str, str]]:
    """Conditions for alarms of `stack`'s account and region only.

    Not this stack's alarms by name: CloudFormation generates their names.
    """
    return acting_for(
        stack,
        stack.format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name="*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        ),
    )


def eventbridge_rules() -> iam.ServicePrincipal:
    return iam.ServicePrincipal(EVENTBRIDGE)


def this_accounts_rules(stack: Stack) -> dict[str, dict[str, str]]:
    """Conditions for EventBridge rules of `stack`'s account and region only.

    For the key's policy, which can't name the rule: the rule targets the topic, the
    topic is encrypted with the key, and a key policy naming the rule would be a cycle.
    """
    return acting_for(stack, stack.format_arn(service="events", resource="rule", resource_name="*"))
