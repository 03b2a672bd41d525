"""cdk-nag: the AwsSolutions pack, and reviewed exceptions that each carry their reason."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def add_checks(scope: IConstruct) -> None:
    """Run the AwsSolutions pack at synth: an unacknowledged finding fails the synth.

    Acknowledgments are also written into the template metadata (`cdk_nag`), so a
    reviewer of the deployed template sees every exception and its reason.
    """
    Validations.of(scope).add_plugins(
        AwsSolutionsChecks(scope, verbose=True, write_suppressions_to_cloud_formation=True)
    )


def acknowledge(scope: IConstruct, reasons: dict[str, str]) -> None:
    """Accept findings (rule id -> reason) on `scope` and everything under it."""
    Validations.of(scope).acknowledge(
        *(Acknowledgment(id=rule, reason=reason) for rule, reason in reasons.items())
    )


_MANAGED_POLICY = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/{}"


def acknowledge_vpc_function(function: IConstruct) -> None:
    """The findings every function in this app shares, and why they are accepted."""
    acknowledge(
        function,
        {
            f"AwsSolutions-IAM4[{_MANAGED_POLICY.format('AWSLambdaBasicExecutionRole')}]": (
                "AWS-maintained minimal policy: create log streams and put log events, and "
                "nothing else. A copy as a customer policy would only drift from it."
            ),
            f"AwsSolutions-IAM4[{_MANAGED_POLICY.format('AWSLambdaVPCAccessExecutionRole')}]": (
                "AWS-maintained policy Lambda needs to attach its network interfaces in the "
                "VPC (ec2:Create/Describe/DeleteNetworkInterface, which support no resource "
                "scoping); required for any VPC function."
            ),
            "AwsSolutions-L1": (
                "python3.13 is pinned on purpose: the bundle's binary wheels (cp313) and "
                "bytecode are built for exactly this runtime. Moving to a newer runtime is a "
                "reviewed change of LAMBDA_TARGET and the functions together."
            ),
        },
    )
