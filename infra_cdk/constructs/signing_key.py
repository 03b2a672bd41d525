"""The JWT signing key's rotation: a Secrets Manager schedule and its small function.

Every 30 days Secrets Manager runs `lambda_app.handlers.rotate_signing_key` (four steps),
which makes a new key current and keeps the old one as previous: the API signs with
the new key within its cache TTL and accepts both, so nobody is signed out.

The function runs outside the VPC, as the pre-traffic hook does: it calls Secrets Manager
and nothing else, and reads no data in the VPC. In the VPC, a function idle for weeks
loses its network interface, and the invocation that finds it gone fails while the
function is Pending again: this one runs once a month. It may read, write and relabel
this one secret and use its KMS key through Secrets Manager only. A failed step alarms
(infra_cdk/constructs/monitoring.py), and so does the rotation Secrets Manager reports
failed.

The schedule is a CfnRotationSchedule rather than `secret.add_rotation_schedule`: CDK's
helper also grants `secretsmanager:GetRandomPassword` on `*` (for functions that ask
Secrets Manager for a password), which this one does not use (its keys come from
`secrets.token_urlsafe`) and which this app would not wave through (AwsSolutions-IAM5).
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra_cdk.constructs.log_groups import encrypted_log_group
from infra_cdk.nag import acknowledge_function, skip_checkov
from infra_cdk.tracing import enable_active_tracing
from lambda_app import workload

ROTATION_HANDLER = "lambda_app.handlers.rotate_signing_key.handler"
ROTATION_DAYS = 30
# A few Secrets Manager calls per step: seconds, with room for a cold start.
ROTATION_TIMEOUT = Duration.seconds(30)
ROTATION_MEMORY_MB = 256
SECRETS_MANAGER = "secretsmanager.amazonaws.com"


class SigningKeyRotation(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        secret: secretsmanager.Secret,
        code: lambda_.Code,
        log_retention: logs.RetentionDays,
        encryption_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        # The ids vpc_function gave them, so the resources keep their logical ids.
        self.log_group = encrypted_log_group(
            self, "FunctionLogs", retention=log_retention, encryption_key=encryption_key
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"{workload.NAME} JWT signing key rotation (Secrets Manager)",
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=lambda_.Architecture.ARM_64,
            handler=ROTATION_HANDLER,
            code=code,  # the API's asset: no third bundle to build or upload
            memory_size=ROTATION_MEMORY_MB,
            timeout=ROTATION_TIMEOUT,
            log_group=self.log_group,
        )
        enable_active_tracing(self.function)
        acknowledge_function(self.function)

        # The rotation protocol's four actions, on this secret only.
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "secretsmanager:DescribeSecret",
                    "secretsmanager:GetSecretValue",
                    "secretsmanager:PutSecretValue",
                    "secretsmanager:UpdateSecretVersionStage",
                ],
                resources=[secret.secret_arn],
            )
        )
        # Its key: decrypt the current value, encrypt the new one; through Secrets Manager only.
        assert self.function.role is not None
        encryption_key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[self.function.role],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],  # in a key policy: this key
                conditions={
                    "StringEquals": {
                        "kms:ViaService": f"secretsmanager.{Stack.of(self).region}.amazonaws.com"
                    }
                },
            )
        )
        # Secrets Manager, on behalf of this account only, may invoke it.
        self.function.add_permission(
            "SecretsManagerInvoke",
            principal=iam.ServicePrincipal(SECRETS_MANAGER),
            source_account=Stack.of(self).account,
        )
        self.schedule = secretsmanager.CfnRotationSchedule(
            self,
            "Schedule",
            secret_id=secret.secret_arn,
            rotation_lambda_arn=self.function.function_arn,
            rotation_rules=secretsmanager.CfnRotationSchedule.RotationRulesProperty(
                automatically_after_days=ROTATION_DAYS
            ),
            # Not at deploy time: the first rotation comes 30 days on, when every API
            # version that may still serve (a canary's old one) reads the key-ring format.
            # Secrets Manager still runs testSecret once now, on a copy of the current value.
            rotate_immediately_on_update=False,
        )
        # Secrets Manager checks that it may invoke the function when the schedule is made:
        # the schedule waits for the function and everything under it (the permission).
        self.schedule.node.add_dependency(self.function)
        self._suppress_reviewed_findings()

    def _suppress_reviewed_findings(self) -> None:
        skip_checkov(
            self.function,
            {
                "CKV_AWS_116": (
                    "Invoked synchronously by Secrets Manager, once per rotation step; a failed "
                    "step fails the rotation, which Secrets Manager reports and retries, while "
                    "AWSCURRENT stays on the working key. A dead-letter queue only catches "
                    "asynchronous invocations."
                ),
                "CKV_AWS_117": (
                    "Calls only the Secrets Manager API (over TLS, signed, on this one secret) "
                    "and reads no data in the VPC. Inside it, a function idle for weeks loses "
                    "its network interface and its next (monthly) invocation fails while "
                    "Lambda attaches a new one."
                ),
                "CKV_AWS_115": (
                    "No reserved concurrency: it runs four short steps once a month, and "
                    "Lambda refuses any reservation in accounts with a small concurrency quota; "
                    "a reservation would only take capacity from the API."
                ),
            },
        )
