"""What every function of the stack is made of: python3.13 on Graviton in the private
subnets, a security group of its own with no outbound rule (each caller opens the ports
it needs), an encrypted log group of its own, and active tracing.

Made in the caller's scope, under the same ids in each (`SecurityGroup`, `FunctionLogs`,
`Function`), so every function's resources keep their logical ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra_cdk.constructs.log_groups import encrypted_log_group
from infra_cdk.nag import acknowledge_vpc_function
from infra_cdk.tracing import enable_active_tracing


@dataclass(frozen=True)
class VpcFunction:
    function: lambda_.Function
    security_group: ec2.SecurityGroup
    log_group: logs.LogGroup


def vpc_function(
    scope: Construct,
    *,
    description: str,
    security_group_description: str,
    handler: str,
    code: lambda_.Code,
    memory_size: int,
    timeout: Duration,
    vpc: ec2.IVpc,
    subnets: ec2.SubnetSelection,
    log_retention: logs.RetentionDays,
    encryption_key: kms.IKey,
    **function_options: Any,
) -> VpcFunction:
    """The function, its security group and its log group; `function_options` are the
    rest of `lambda_.Function`'s (environment, concurrency, SnapStart, versions...)."""
    security_group = ec2.SecurityGroup(
        scope,
        "SecurityGroup",
        vpc=vpc,
        allow_all_outbound=False,
        description=security_group_description,
    )
    log_group = encrypted_log_group(
        scope, "FunctionLogs", retention=log_retention, encryption_key=encryption_key
    )
    function = lambda_.Function(
        scope,
        "Function",
        description=description,
        runtime=lambda_.Runtime.PYTHON_3_13,
        architecture=lambda_.Architecture.ARM_64,  # Graviton: ~20% cheaper per GB-second
        handler=handler,
        code=code,
        memory_size=memory_size,
        timeout=timeout,
        vpc=vpc,
        vpc_subnets=subnets,
        security_groups=[security_group],
        log_group=log_group,
        **function_options,
    )
    # Traces show where a slow request spends its time (cold start, proxy, queries).
    enable_active_tracing(function)
    acknowledge_vpc_function(function)
    return VpcFunction(function, security_group, log_group)
