"""Every log group of the stack is made the same way: encrypted with the stack's key
(`encryption.Encryption`) and kept for the stage's retention. Deleted with the stack,
unless the stage keeps them (`StageConfig.log_removal_policy`, which the stack applies)."""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct


def encrypted_log_group(
    scope: Construct,
    construct_id: str,
    *,
    retention: logs.RetentionDays,
    encryption_key: kms.IKey,
    **options: Any,
) -> logs.LogGroup:
    """`options`: the rest of `logs.LogGroup`'s (a fixed `log_group_name`, for RDS)."""
    return logs.LogGroup(
        scope,
        construct_id,
        retention=retention,
        encryption_key=encryption_key,
        removal_policy=RemovalPolicy.DESTROY,
        **options,
    )
