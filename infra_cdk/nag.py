"""cdk-nag and checkov: reviewed exceptions, each with its reason, next to the resource.

cdk-nag's AwsSolutions pack runs at synth. checkov runs on the synthesized templates
(tests/infra/test_checks.py, with the repository's .checkov.yaml) and honours the skips
written here into each resource's `Metadata.checkov`: scoped to one resource, and to
one stage where the reason is the stage's (as for cdk-nag's acknowledgments).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from infra_cdk.cdk_providers import cdk_provider_handlers


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


def managed_policy_finding(policy_name: str) -> str:
    """cdk-nag's IAM4 finding for one AWS-managed service-role policy."""
    return f"AwsSolutions-IAM4[{_MANAGED_POLICY.format(policy_name)}]"


def acknowledge_function(function: IConstruct) -> None:
    """The findings every function in this app shares, and why they are accepted."""
    acknowledge(
        function,
        {
            managed_policy_finding("AWSLambdaBasicExecutionRole"): (
                "AWS-maintained minimal policy: create log streams and put log events, and "
                "nothing else. A copy as a customer policy would only drift from it."
            ),
            "AwsSolutions-L1": (
                "python3.13 is pinned on purpose: the bundle's binary wheels (cp313) and "
                "bytecode are built for exactly this runtime. Moving to a newer runtime is a "
                "reviewed change of LAMBDA_TARGET and the functions together."
            ),
        },
    )


def acknowledge_vpc_function(function: IConstruct) -> None:
    """acknowledge_function's findings, and the one a function in the VPC adds."""
    acknowledge_function(function)
    acknowledge(
        function,
        {
            managed_policy_finding("AWSLambdaVPCAccessExecutionRole"): (
                "AWS-maintained policy Lambda needs to attach its network interfaces in the "
                "VPC (ec2:Create/Describe/DeleteNetworkInterface, which support no resource "
                "scoping); required for any VPC function."
            ),
        },
    )


# CKV_AWS_173 (environment variables under a customer-managed key), for both functions.
ENVIRONMENT_HOLDS_NO_SECRETS = (
    "The environment holds hostnames, names, flags and secret ARNs, never a secret value "
    "(tests/infra/test_stack.py checks that); Lambda encrypts it at rest with its "
    "AWS-managed key. The secrets themselves are in Secrets Manager under this stack's "
    "customer-managed key."
)


def skip_checkov(scope: IConstruct, reasons: dict[str, str]) -> None:
    """Skip checkov checks (check id -> reason) on the CloudFormation resource of `scope`."""
    resource = scope if isinstance(scope, CfnResource) else scope.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{scope.node.path} has no CloudFormation resource to carry the skip")
    skips = list((resource.get_metadata("checkov") or {}).get("skip", []))
    skips += [{"id": check, "comment": reason} for check, reason in reasons.items()]
    resource.add_metadata("checkov", {"skip": skips})


def skip_checkov_on_cdk_providers(stack: Stack) -> None:
    """The checks CDK's own custom-resource handler functions fail, and why that is fine.

    CDK adds them (the default security group's lock-down, the migration trigger) as
    one function per stack each; their code is CDK's, not this app's.
    """
    for handler in cdk_provider_handlers(stack):
        skip_checkov(
            handler,
            {
                "CKV_AWS_116": (
                    "CDK's custom-resource handler, invoked by CloudFormation during a deploy: "
                    "a failed call fails the deploy and rolls it back, so there is no event a "
                    "dead-letter queue could keep for a retry."
                ),
                "CKV_AWS_117": (
                    "CDK's custom-resource handler calls only AWS APIs (EC2, Lambda) and "
                    "CloudFormation's response URL, and reads no data in the VPC; the isolated "
                    "subnets have no route to any of those, so inside the VPC it could not work."
                ),
                "CKV_AWS_115": (
                    "CDK's custom-resource handler runs a few times per deploy and at no other "
                    "time; a reserved concurrency would take capacity from the account's "
                    "unreserved pool and protect nothing."
                ),
            },
        )
