"""The conditions that keep a service principal from acting for another account's
resources through this stack's roles and policies (a confused deputy): AWS's
`aws:SourceAccount` and `aws:SourceArn`, which the service sends with each request it
makes on a resource's behalf."""

from __future__ import annotations

from aws_cdk import Stack


def acting_for(stack: Stack, source_arn: str) -> dict[str, dict[str, str]]:
    """Conditions admitting the service only while it acts for a resource of `stack`'s
    account matching `source_arn` (an ARN, `*` wildcards allowed)."""
    return {
        "StringEquals": {"aws:SourceAccount": stack.account},
        "ArnLike": {"aws:SourceArn": source_arn},
    }
