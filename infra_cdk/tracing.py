"""Active X-Ray tracing for a function, with its write permissions from AWS's managed policy.

`tracing=lambda_.Tracing.ACTIVE` would add `xray:PutTraceSegments` and
`xray:PutTelemetryRecords` on `*` to the function's own policy: X-Ray's write actions
support no resource scoping, and this app never waves a wildcard through in a policy of
its own (tests/infra/test_checks.py). AWS's `AWSXRayDaemonWriteAccess` grants the same
writes (plus the sampling-rule reads the X-Ray SDKs make), maintained by AWS, as the
functions' other managed policies are.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

from infra_cdk.nag import acknowledge

XRAY_WRITE_POLICY = "AWSXRayDaemonWriteAccess"
XRAY_WRITE_FINDING = (
    f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{XRAY_WRITE_POLICY}]"
)


def enable_active_tracing(function: lambda_.Function) -> None:
    resource = function.node.default_child
    assert isinstance(resource, lambda_.CfnFunction)
    resource.tracing_config = lambda_.CfnFunction.TracingConfigProperty(mode="Active")
    assert function.role is not None
    function.role.add_managed_policy(
        iam.ManagedPolicy.from_aws_managed_policy_name(XRAY_WRITE_POLICY)
    )
    acknowledge(
        function,
        {
            XRAY_WRITE_FINDING: (
                "AWS-maintained policy for sending traces: xray:PutTraceSegments, "
                "PutTelemetryRecords and the sampling-rule reads, none of which supports "
                "resource scoping. Needed by Lambda's active tracing."
            ),
        },
    )
