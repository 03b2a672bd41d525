"""Alarms on what breaks users first, one SNS topic they notify, and a dashboard."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

PERIOD = Duration.minutes(5)
GIB = 1024**3


def session_pinned_connections(proxy: rds.IDatabaseProxy) -> cloudwatch.Metric:
    """Proxy-to-database connections pinned to one client session (dimension ProxyName).

    Each of the proxy's nodes publishes its own value: Sum adds them up.
    """
    return cloudwatch.Metric(
        namespace="AWS/RDS",
        metric_name="DatabaseConnectionsCurrentlySessionPinned",
        dimensions_map={"ProxyName": proxy.db_proxy_name},
        statistic="Sum",
        period=PERIOD,
    )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dashboard_name: str,
        http_api: apigw.HttpApi,
        api_function: lambda_.Function,
        migration_function: lambda_.Function,
        database: rds.DatabaseInstance,
        proxy: rds.IDatabaseProxy,
        db_connections_threshold: int,
        alarm_email: str | None,
        encryption_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)

        # Encrypted under the stack's key, whose policy lets CloudWatch alarms publish
        # (CloudWatch cannot use the AWS-managed SNS key).
        self.topic = sns.Topic(self, "AlarmTopic", enforce_ssl=True, master_key=encryption_key)
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))

        api_timeout_ms = (api_function.timeout or Duration.seconds(3)).to_milliseconds()
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self._alarm(
            "Api5xx",
            http_api.metric_server_error(period=PERIOD, statistic="Sum"),
            threshold=5,
            description="The HTTP API answered 5XX (a crash, a timeout or the database down).",
        )
        self._alarm(
            "ApiFunctionErrors",
            api_function.metric_errors(period=PERIOD, statistic="Sum"),
            threshold=1,
            description="The API function raised or timed out instead of returning a response.",
        )
        self._alarm(
            "ApiFunctionThrottles",
            api_function.metric_throttles(period=PERIOD, statistic="Sum"),
            threshold=1,
            description="Requests were refused for lack of Lambda concurrency.",
        )
        self._alarm(
            "ApiFunctionDuration",
            api_function.metric_duration(period=PERIOD, statistic="p99"),
            threshold=0.8 * api_timeout_ms,
            evaluation_periods=3,
            description="p99 duration is above 80% of the timeout: requests are about to fail.",
        )
        self._alarm(
            "MigrationErrors",
            migration_function.metric_errors(period=PERIOD, statistic="Sum"),
            threshold=1,
            description="A migration run failed (deploy trigger or `release` command).",
        )
        self._alarm(
            "DatabaseCpu",
            database.metric_cpu_utilization(period=PERIOD, statistic="Average"),
            threshold=80,
            evaluation_periods=3,
            description="Database CPU above 80% for 15 minutes.",
        )
        self._alarm(
            "DatabaseConnections",
            database.metric_database_connections(period=PERIOD, statistic="Maximum"),
            threshold=db_connections_threshold,
            evaluation_periods=2,
            description="Database connections near the instance's max_connections.",
        )
        self._alarm(
            "DatabaseFreeStorage",
            database.metric_free_storage_space(period=PERIOD, statistic="Minimum"),
            threshold=2 * GIB,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            description="Less than 2 GiB of database storage left (autoscaling may be at its cap).",
        )
        self._alarm(
            "ProxySessionPinning",
            session_pinned_connections(proxy),
            threshold=0,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            description=(
                "RDS Proxy pinned a database connection to one client session (after a SET, "
                "an SQL PREPARE, an advisory lock or a temporary table): a pinned "
                "connection serves no other client, so the pool stops multiplexing."
            ),
        )

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Alarms", alarms=list(self.alarms.values()), width=24, height=4
            )
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="API requests and errors",
                left=[
                    http_api.metric_count(period=PERIOD),
                    http_api.metric_client_error(period=PERIOD),
                    http_api.metric_server_error(period=PERIOD),
                ],
            ),
            cloudwatch.GraphWidget(
                title="API latency (p50, p99)",
                left=[
                    http_api.metric_latency(period=PERIOD, statistic="p50"),
                    http_api.metric_latency(period=PERIOD, statistic="p99"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="API function",
                left=[
                    api_function.metric_invocations(period=PERIOD),
                    api_function.metric_errors(period=PERIOD),
                    api_function.metric_throttles(period=PERIOD),
                ],
                right=[api_function.metric_duration(period=PERIOD, statistic="p99")],
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Database CPU (%)",
                left=[database.metric_cpu_utilization(period=PERIOD)],
            ),
            cloudwatch.GraphWidget(
                title="Database connections",
                left=[database.metric_database_connections(period=PERIOD, statistic="Maximum")],
            ),
            cloudwatch.GraphWidget(
                title="Database free storage (bytes)",
                left=[database.metric_free_storage_space(period=PERIOD, statistic="Minimum")],
            ),
            cloudwatch.GraphWidget(
                title="Proxy connections pinned to a session",
                left=[session_pinned_connections(proxy)],
            ),
        )

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
        comparison: cloudwatch.ComparisonOperator = (
            cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        ),
    ) -> None:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            comparison_operator=comparison,
            # No traffic is not an incident.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        alarm.add_ok_action(actions.SnsAction(self.topic))
        self.alarms[construct_id] = alarm
