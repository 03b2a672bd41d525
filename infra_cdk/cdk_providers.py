"""CDK's own custom-resource handler functions, and where they log.

CDK adds a function of its own for some constructs (the VPC's default-security-group
lock-down, the migration trigger), one per stack each. Left alone, Lambda makes each one's
log group on its first call: unencrypted, never expiring, and left behind by a deleted
stack. `log_to_the_stacks_group` points them at one log group of the stack instead
(Lambda's LoggingConfig), made like every other (`encrypted_log_group`).
"""

from __future__ import annotations

from aws_cdk import CfnResource, CustomResourceProviderBase, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs

from infra_cdk.constructs.log_groups import encrypted_log_group


def cdk_provider_handlers(stack: Stack) -> list[CfnResource]:
    """The handler function of every CDK custom-resource provider of `stack`."""
    providers = [c for c in stack.node.children if isinstance(c, CustomResourceProviderBase)]
    handlers = [
        resource
        for provider in providers
        for resource in provider.node.find_all()
        if isinstance(resource, CfnResource)
        and resource.cfn_resource_type == "AWS::Lambda::Function"
    ]
    if not handlers:
        raise LookupError(f"{stack.node.path}: no CDK custom-resource handler found")
    return handlers


def log_to_the_stacks_group(
    stack: Stack, *, retention: logs.RetentionDays, encryption_key: kms.IKey
) -> logs.LogGroup:
    """Call once every construct is in place: a provider added later would log on its own.

    The handlers' role (CDK's, with AWSLambdaBasicExecutionRole) may write to any group,
    and the group's name is a reference, so each handler is created after the group and
    never logs before it exists."""
    group = encrypted_log_group(
        stack, "CdkProviderLogs", retention=retention, encryption_key=encryption_key
    )
    for handler in cdk_provider_handlers(stack):
        handler.add_property_override("LoggingConfig.LogGroup", group.log_group_name)
    return group
