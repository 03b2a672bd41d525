"""The API: the FastAPI app in one Lambda function behind an API Gateway HTTP API."""

from __future__ import annotations

import json

import jsii
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra_cdk.constructs.log_groups import encrypted_log_group
from infra_cdk.constructs.vpc_function import vpc_function
from infra_cdk.nag import (
    ENVIRONMENT_HOLDS_NO_SECRETS,
    acknowledge,
    skip_checkov,
)
from lambda_app import workload

API_HANDLER = "lambda_app.handlers.api.handler"
# Lambda's CPU share grows with memory (1 full vCPU at 1,769 MB). The slowest thing
# the API does is Argon2id hashing (19 MiB, t=2) on register and token requests:
# 1,024 MB (~0.6 vCPU) keeps that well under 100 ms without paying for a whole core.
API_MEMORY_MB = 1024
# Above the database's connect (5 s) and statement (10 s) timeouts, so one slow step fails
# with a clean 503; a request making several slow ones gets the app's own 503 three seconds
# before this (lambda_app.core.deadline). Below the HTTP API's hard 30 s integration limit.
API_TIMEOUT = Duration.seconds(20)

# One JSON line per request; no headers, query strings or bodies (tokens, passwords).
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "requestTime": "$context.requestTime",
        "method": "$context.httpMethod",
        "path": "$context.path",
        "routeKey": "$context.routeKey",
        "status": "$context.status",
        "protocol": "$context.protocol",
        "responseLength": "$context.responseLength",
        "latencyMs": "$context.responseLatency",
        "integrationLatencyMs": "$context.integrationLatency",
        "integrationError": "$context.integrationErrorMessage",
        "userAgent": "$context.identity.userAgent",
    }
)


@jsii.implements(apigw.IAccessLogSettings)
class _AccessLogSettings:
    """aws_apigatewayv2 takes access log settings as an interface, not a struct."""

    def __init__(
        self, *, destination: apigw.IAccessLogDestination, format: apigateway.AccessLogFormat
    ) -> None:
        self._destination = destination
        self._format = format

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigateway.AccessLogFormat:
        return self._format


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        environment: dict[str, str],
        log_retention: logs.RetentionDays,
        reserved_concurrency: int | None,
        snap_start: bool,
        throttle_rate_per_second: int,
        throttle_burst: int,
        encryption_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)

        parts = vpc_function(
            self,
            description=f"{workload.NAME} API (FastAPI through Mangum)",
            security_group_description=(
                "API function: out to the RDS Proxy and the Secrets Manager endpoint only"
            ),
            handler=API_HANDLER,
            code=code,
            memory_size=API_MEMORY_MB,
            timeout=API_TIMEOUT,
            vpc=vpc,
            subnets=subnets,
            log_retention=log_retention,
            encryption_key=encryption_key,
            environment=environment,
            reserved_concurrent_executions=reserved_concurrency,
            # SnapStart restores a snapshot taken after init instead of importing
            # everything on each cold start. The snapshot holds the imports and the built
            # app, and no connection or secret: the app opens and fetches those on first
            # use. What must differ per execution environment (`random`'s state) is
            # made again after restore (docs/snapstart.md).
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
            # Superseded versions are kept (removed from the stack, not deleted), so
            # `release rollback` has a version to point `live` back at. A version made by
            # an update that rolls back (a failed pre-traffic hook, an alarm) is deleted
            # with it (DeletionPolicy RetainExceptOnCreate), so no rollback can pick a
            # version that never took traffic. Pruning them is docs/migrations-and-
            # releases.md's "Rolling back"; with SnapStart each one caches its snapshot
            # until it goes 14 days without an invocation.
            current_version_options=lambda_.VersionOptions(
                removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE
            ),
        )
        self.function, self.security_group = parts.function, parts.security_group
        self.log_group = parts.log_group
        checkov_reasons = {
            "CKV_AWS_116": (
                "API Gateway invokes the function synchronously and answers the client "
                "with the error (a 5xx); Lambda sends only asynchronous invocations to a "
                "dead-letter queue, so one here would never receive anything."
            ),
            "CKV_AWS_173": ENVIRONMENT_HOLDS_NO_SECRETS,
        }
        if reserved_concurrency is None:
            checkov_reasons["CKV_AWS_115"] = (
                "No reserved concurrency in this stage (StageConfig.api_reserved_concurrency): "
                "Lambda refuses a reservation that leaves an account with a small quota "
                "fewer than 100 unreserved executions. The HTTP API stage's throttle caps "
                "the request rate instead."
            )
        skip_checkov(self.function, checkov_reasons)
        # API Gateway calls a published version through this alias: SnapStart applies
        # only to versions. CodeDeploy shifts it to each new version
        # (infra_cdk/constructs/deployment.py).
        self.alias = lambda_.Alias(
            self, "Live", alias_name="live", version=self.function.current_version
        )

        self.access_logs = encrypted_log_group(
            self, "AccessLogs", retention=log_retention, encryption_key=encryption_key
        )
        self.http_api = apigw.HttpApi(
            self,
            "HttpApi",
            description=f"{workload.NAME} users and authentication API",
            # Every path goes to FastAPI, which owns routing, auth and the 404s.
            default_integration=integrations.HttpLambdaIntegration("Lambda", self.alias),
            create_default_stage=False,
        )
        self.stage = apigw.HttpStage(
            self,
            "DefaultStage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            # The account-wide default is 10,000 rps: far above what the database can take.
            throttle=apigw.ThrottleSettings(
                rate_limit=throttle_rate_per_second, burst_limit=throttle_burst
            ),
            access_log_settings=_AccessLogSettings(
                destination=apigw.LogGroupLogDestination(self.access_logs),
                format=apigateway.AccessLogFormat.custom(ACCESS_LOG_FORMAT),
            ),
        )
        self.url = self.stage.url

        acknowledge(
            self.http_api,
            {
                "AwsSolutions-APIG4": (
                    "Authorization is done by the application: protected routes require "
                    "the app's own JWT bearer token (checked on every request), while "
                    "registration, login and health checks are public by design."
                ),
            },
        )
