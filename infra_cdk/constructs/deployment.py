"""How a new API version takes traffic: CodeDeploy shifts the `live` alias to it.

A release, in the order CloudFormation runs it (tests/infra/test_deployment.py pins it):

1. the migration trigger (infra_cdk/constructs/migrations.py) upgrades the schema;
2. the API function is updated and a new version is published (with SnapStart in
   prod, which snapshots published versions);
3. the alias update hands over to CodeDeploy, which first runs the pre-traffic hook
   (`lambda_app.handlers.pre_traffic`): it invokes the new version directly and fails
   the deployment unless health, readiness (the database through RDS Proxy, with IAM)
   and the OpenAPI schema answer;
4. CodeDeploy shifts the alias (`StageConfig.api_deployment_config`: a 10% canary for
   five minutes in prod, all at once in dev). A failed hook, a stopped deployment or an
   alarm below firing while it runs moves the alias back to the previous version.

The alarms watch the new version only, so the version that already serves is not
blamed: its function errors and p99 duration (what Lambda publishes for invocations
through the alias, with `ExecutedVersion=<version>`), and the API's 5xx rate (API
Gateway has no per-version metric, so that one sees both versions during a canary; a
canary serving only errors still lifts it well over the threshold). The rate reads 0 in
a minute of fewer than MIN_REQUESTS_FOR_RATE requests, as the monitoring alarm's does.

`-c deployment_alarms=ignore` (infra_cdk/app.py) turns the alarms off for one deploy: a
hotfix for a version that already fails would otherwise be rolled back by the API-wide
5xx rate the old version keeps up. The pre-traffic hook still runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import (
    Annotations,
    CfnCodeDeployLambdaAliasUpdate,
    CfnOutput,
    CfnUpdatePolicy,
    Duration,
)
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra_cdk.constructs.log_groups import encrypted_log_group
from infra_cdk.constructs.monitoring import MIN_REQUESTS_FOR_RATE, server_error_rate
from infra_cdk.nag import acknowledge, managed_policy_finding, skip_checkov
from lambda_app import workload

PRE_TRAFFIC_HANDLER = "lambda_app.handlers.pre_traffic.handler"
# Three synchronous calls to the new version, which answer in a second or two when it is
# healthy. The hook starts a call only while the worst one could take (40 s read
# timeout) still leaves it time to report, so a slow version is reported Failed before
# this timeout instead of leaving CodeDeploy to wait its hour for a report.
PRE_TRAFFIC_TIMEOUT = Duration.minutes(2)
# Asynchronous invocations of the hook: no retry (one run, one report per lifecycle
# event), and none older than the hour CodeDeploy waits for the report.
PRE_TRAFFIC_RETRY_ATTEMPTS = 0
PRE_TRAFFIC_MAX_EVENT_AGE = Duration.hours(1)
# boto3 and the standard library only: 256 MB gives the import enough CPU.
PRE_TRAFFIC_MEMORY_MB = 256
# One-minute periods: a five-minute canary gets several looks at the new version.
ALARM_PERIOD = Duration.minutes(1)
SERVER_ERROR_RATE_PERCENT = 5

# Stack outputs the `release rollback` command reads (lambda_app/devtools/release.py).
API_FUNCTION_OUTPUT = "ApiFunctionName"
DEPLOYMENT_APPLICATION_OUTPUT = "ApiDeploymentApplication"
DEPLOYMENT_GROUP_OUTPUT = "ApiDeploymentGroup"


def version_metric(
    function: lambda_.IFunction,
    alias: lambda_.IAlias,
    version: lambda_.IVersion,
    metric_name: str,
    *,
    statistic: str,
) -> cloudwatch.Metric:
    """A Lambda metric of the requests the alias sent to one version.

    API Gateway invokes the alias, and Lambda publishes those invocations with
    `Resource=<function>:<alias>` and `ExecutedVersion=<version>` (as SAM's canary
    alarms read them); `Resource=<function>:<version>` counts only direct calls of the
    version, which during a canary are the pre-traffic hook's. Not
    `version.metric_errors()` either: CDK's Version metrics carry a single
    `FunctionName=<function>:<version>` dimension, which Lambda never publishes.
    """
    return cloudwatch.Metric(
        namespace="AWS/Lambda",
        metric_name=metric_name,
        dimensions_map={
            "FunctionName": function.function_name,
            "Resource": f"{function.function_name}:{alias.alias_name}",
            "ExecutedVersion": version.version,
        },
        statistic=statistic,
        period=ALARM_PERIOD,
    )


class Deployment(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.Function,
        alias: lambda_.Alias,
        http_api: apigw.HttpApi,
        hook_code: lambda_.Code,
        deployment_config: codedeploy.ILambdaDeploymentConfig,
        log_retention: logs.RetentionDays,
        encryption_key: kms.IKey,
        extra_alarms: Sequence[cloudwatch.IAlarm] = (),
        ignore_alarms: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        version = function.current_version
        timeout_ms = (function.timeout or Duration.seconds(3)).to_milliseconds()

        self.alarms: list[cloudwatch.IAlarm] = [
            self._alarm(
                "NewVersionErrors",
                version_metric(function, alias, version, "Errors", statistic="Sum"),
                threshold=1,
                description="The new API version raised or timed out during its deployment.",
            ),
            self._alarm(
                "NewVersionDuration",
                version_metric(function, alias, version, "Duration", statistic="p99"),
                threshold=0.8 * timeout_ms,
                description="The new API version's p99 duration is above 80% of the timeout.",
            ),
            # With the monitoring alarm's traffic floor: one 503 in a quiet minute is no
            # reason to roll a canary back (NewVersionErrors still fires on one error).
            self._alarm(
                "ServerErrorRate",
                server_error_rate(http_api),
                threshold=SERVER_ERROR_RATE_PERCENT,
                description=(
                    f"{SERVER_ERROR_RATE_PERCENT}% or more of the API's requests answered 5xx "
                    f"in a minute of at least {MIN_REQUESTS_FOR_RATE} requests during a "
                    "deployment."
                ),
            ),
            *extra_alarms,
        ]

        self.hook_logs = encrypted_log_group(
            self, "PreTrafficHookLogs", retention=log_retention, encryption_key=encryption_key
        )
        # Outside the VPC: it calls only the Lambda and CodeDeploy APIs, which the
        # isolated subnets cannot reach (an endpoint for each would cost ~$15/month).
        self.hook = lambda_.Function(
            self,
            "PreTrafficHook",
            description=f"{workload.NAME} pre-traffic check of a new API version",
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=lambda_.Architecture.ARM_64,
            handler=PRE_TRAFFIC_HANDLER,
            code=hook_code,  # the API's own asset: no second bundle to build or upload
            memory_size=PRE_TRAFFIC_MEMORY_MB,
            timeout=PRE_TRAFFIC_TIMEOUT,
            # The version under test. A new version changes this, so the hook is
            # updated before the alias update that runs it.
            environment={
                "TARGET_FUNCTION_NAME": function.function_name,
                "TARGET_FUNCTION_VERSION": version.version,
            },
            log_group=self.hook_logs,
            retry_attempts=PRE_TRAFFIC_RETRY_ATTEMPTS,
            max_event_age=PRE_TRAFFIC_MAX_EVENT_AGE,
        )
        # The new version only: not $LATEST, not the alias, not any other version.
        self.hook.add_to_role_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[version.function_arn])
        )

        self.group = codedeploy.LambdaDeploymentGroup(
            self,
            "Group",
            alias=alias,
            deployment_config=deployment_config,
            alarms=self.alarms,
            # AlarmConfiguration.Enabled false: CodeDeploy does not read the alarms.
            ignore_alarm_configuration=ignore_alarms,
            # Rolling back "in alarm" needs alarms CodeDeploy reads: off while they're ignored.
            auto_rollback=codedeploy.AutoRollbackConfig(
                failed_deployment=True,
                stopped_deployment=True,
                deployment_in_alarm=not ignore_alarms,
            ),
        )
        if ignore_alarms:
            Annotations.of(self.group).add_warning_v2(
                "lambda-app:deployment-alarms-ignored",
                "-c deployment_alarms=ignore: this deploy shifts traffic without watching "
                "its alarms (the pre-traffic hook still runs); the next deploy without the "
                "option watches them again.",
            )
        # Set by hand rather than with `pre_hook=`: CDK's grant would let CodeDeploy invoke
        # every version of the hook (`:*`); it invokes the unqualified function only. The
        # status grant is scoped to this deployment group.
        self._use_pre_traffic_hook(alias)
        # CloudFormation updates the alias (which starts the deployment) only once the
        # hook, its new target and its permissions are in place.
        alias.node.add_dependency(self.hook, self.group)

        CfnOutput(
            self,
            "FunctionName",
            key=API_FUNCTION_OUTPUT,
            value=function.function_name,
            description="The API function whose `live` alias `release rollback` moves",
        )
        CfnOutput(
            self,
            "ApplicationName",
            key=DEPLOYMENT_APPLICATION_OUTPUT,
            value=self.group.application.application_name,
            description="CodeDeploy application of the API's traffic shifting",
        )
        CfnOutput(
            self,
            "GroupName",
            key=DEPLOYMENT_GROUP_OUTPUT,
            value=self.group.deployment_group_name,
            description="CodeDeploy deployment group `release rollback` stops deployments of",
        )
        self._suppress_reviewed_findings()

    def _use_pre_traffic_hook(self, alias: lambda_.Alias) -> None:
        alias_resource = alias.node.default_child
        assert isinstance(alias_resource, lambda_.CfnAlias)
        alias_resource.cfn_options.update_policy = CfnUpdatePolicy(
            code_deploy_lambda_alias_update=CfnCodeDeployLambdaAliasUpdate(
                application_name=self.group.application.application_name,
                deployment_group_name=self.group.deployment_group_name,
                before_allow_traffic_hook=self.hook.function_name,
            )
        )
        self.group.grant_put_lifecycle_event_hook_execution_status(self.hook)
        self.group.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"], resources=[self.hook.function_arn]
            )
        )

    def _alarm(
        self, construct_id: str, metric: cloudwatch.IMetric, *, threshold: float, description: str
    ) -> cloudwatch.Alarm:
        return cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            # A version that takes no traffic yet is not failing.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )

    def _suppress_reviewed_findings(self) -> None:
        acknowledge(
            self.hook,
            {
                managed_policy_finding("AWSLambdaBasicExecutionRole"): (
                    "AWS-maintained minimal policy: create log streams and put log events, and "
                    "nothing else. A copy as a customer policy would only drift from it."
                ),
                "AwsSolutions-L1": (
                    "python3.13 is pinned on purpose: the hook runs from the API's bundle, "
                    "whose binary wheels and bytecode are built for exactly this runtime."
                ),
            },
        )
        acknowledge(
            self.group,
            {
                managed_policy_finding("AWSCodeDeployRoleForLambdaLimited"): (
                    "AWS-maintained policy for CodeDeploy's Lambda deployments: read and "
                    "update aliases, read the alarms, publish to SNS topics named "
                    "CodeDeployTopic_*, invoke functions named CodeDeployHook_*; the hook "
                    "used here is granted separately, on its own ARN."
                ),
            },
        )
        skip_checkov(
            self.hook,
            {
                "CKV_AWS_116": (
                    "CodeDeploy invokes the hook asynchronously once per deployment and waits "
                    "for its report: without one it fails the deployment and rolls back. A "
                    "lifecycle event kept in a dead-letter queue could never be replayed."
                ),
                "CKV_AWS_117": (
                    "The hook calls only the Lambda and CodeDeploy APIs and reads no data in "
                    "the VPC; the isolated subnets have no route to those APIs, so inside the "
                    "VPC it could not work (endpoints for both would cost ~$15/month each)."
                ),
                "CKV_AWS_115": (
                    "Runs once per deployment; a reserved concurrency would take capacity from "
                    "the account's unreserved pool and protect nothing."
                ),
                "CKV_AWS_173": (
                    "The environment holds the API function's name and version number only; "
                    "Lambda encrypts it at rest with its AWS-managed key."
                ),
            },
        )
