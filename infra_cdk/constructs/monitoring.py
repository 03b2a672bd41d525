"""Alarms on what breaks users first, one SNS topic they notify, and a dashboard.

Besides AWS's own metrics, the app's: EMF lines the API and migration functions write
(`lambda_app.core.metrics`, namespace `LambdaApp`, every one with a `Stage` dimension).
The metric names come from that module, so the dashboard reads what the app writes.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra_cdk.alarm_publisher import (
    cloudwatch_alarms,
    eventbridge_rules,
    this_accounts_alarms,
)
from infra_cdk.constructs.database import CONNECTIONS_AROUND_THE_PROXY
from lambda_app.core import metrics as app_metrics

PERIOD = Duration.minutes(5)
# RDS Proxy's connection counts are gauges, one datapoint per node per minute: summed
# over one minute they are the connections at that minute; over five, five times that.
PROXY_GAUGE_PERIOD = Duration.minutes(1)
# The 5xx rate is read per minute: a canary deployment watches it for a few minutes only.
RATE_PERIOD = Duration.minutes(1)
GIB = 1024**3
# Below this many requests in a minute the 5xx rate is taken as 0: one failed request
# out of two in a quiet minute is not an outage (the function-error alarm still fires).
MIN_REQUESTS_FOR_RATE = 5
API_5XX_RATE_PERCENT = 5
# Logins newly locked out (10 failures each) in 5 minutes: a user who forgot a password
# locks one; several at once is someone trying many accounts (credential stuffing).
LOCKOUT_SPIKE = 5
# RDS Proxy's own default, when the target group sets no MaxConnectionsPercent.
PROXY_DEFAULT_MAX_CONNECTIONS_PERCENT = 100
# The connection alarms fire at this share of a limit: time to act before requests wait.
NEAR_A_LIMIT_PERCENT = 80


def server_error_rate(http_api: apigw.IHttpApi) -> cloudwatch.MathExpression:
    """The HTTP API's 5xx answers as a share of its requests (%), minute by minute.

    A rate, not a count: 5 errors are an outage at 10 requests a minute and noise at
    10,000. Below MIN_REQUESTS_FOR_RATE requests the minute reads 0. The deployment
    group's alarm (infra_cdk/constructs/deployment.py) reads the same expression.
    """
    return cloudwatch.MathExpression(
        expression=f"IF(requests >= {MIN_REQUESTS_FOR_RATE}, 100 * errors / requests, 0)",
        using_metrics={
            "errors": http_api.metric_server_error(period=RATE_PERIOD, statistic="Sum"),
            "requests": http_api.metric_count(period=RATE_PERIOD, statistic="Sum"),
        },
        label="5xx rate (%)",
        period=RATE_PERIOD,
    )


def session_pinned_connections(proxy: rds.IDatabaseProxy) -> cloudwatch.Metric:
    """Proxy-to-database connections pinned to one client session (dimension ProxyName).

    Each of the proxy's nodes publishes its own value: Sum adds them up.
    """
    return cloudwatch.Metric(
        namespace="AWS/RDS",
        metric_name="DatabaseConnectionsCurrentlySessionPinned",
        dimensions_map={"ProxyName": proxy.db_proxy_name},
        statistic="Sum",
        period=PROXY_GAUGE_PERIOD,
    )


def proxy_client_connections(proxy: rds.IDatabaseProxy) -> cloudwatch.Metric:
    """Client connections to the proxy (the API's containers), summed over its nodes."""
    return cloudwatch.Metric(
        namespace="AWS/RDS",
        metric_name="ClientConnections",
        dimensions_map={"ProxyName": proxy.db_proxy_name},
        statistic="Sum",
        period=PROXY_GAUGE_PERIOD,
    )


def proxy_max_connections_percent(proxy: rds.IDatabaseProxy) -> int:
    """The share of max_connections the proxy may open, read from its target group."""
    group = proxy.node.try_find_child("ProxyTargetGroup")
    info = getattr(group, "connection_pool_configuration_info", None)
    percent = getattr(info, "max_connections_percent", None)
    return percent if isinstance(percent, int) else PROXY_DEFAULT_MAX_CONNECTIONS_PERCENT


def connection_ceilings(
    *, db_max_connections: int, proxy_percent: int, api_reserved_concurrency: int | None
) -> tuple[int, int]:
    """The most client connections the proxy can have, and database connections the
    instance can: what the connection alarms take 80% of, so that each can fire.

    A running request holds one client connection and borrows at most one database
    connection, so the API's reserved concurrency caps both when it is below the proxy's
    pool (prod: 100 of 162, where 80% of the pool could never be reached). Beside the
    proxy, the instance sees only what it keeps room for (CONNECTIONS_AROUND_THE_PROXY).
    With DB_POOL=single an idle warm container keeps its client connection until the
    proxy's idle timeout: the client alarm then fires sooner, as the containers (not yet
    the requests) near the cap, while database connections still follow transactions.
    """
    clients = db_max_connections * proxy_percent // 100
    if api_reserved_concurrency is not None:
        clients = min(clients, api_reserved_concurrency)
    return clients, min(db_max_connections, clients + CONNECTIONS_AROUND_THE_PROXY)


def rotation_failures(secret: secretsmanager.ISecret) -> dict[str, object]:
    """The event Secrets Manager sends when a rotation of `secret` fails.

    Not an API call: CloudTrail records it as a service event (eventType AwsServiceEvent)
    with the secret's ARN in additionalEventData, and delivers it to the default bus.
    """
    return {
        "source": ["aws.secretsmanager"],
        "detail-type": ["AWS Service Event via CloudTrail"],
        "detail": {
            "eventSource": ["secretsmanager.amazonaws.com"],
            "eventName": ["RotationFailed"],
            "additionalEventData": {"SecretId": [secret.secret_arn]},
        },
    }


def app_metric(name: str, *, stage: str, statistic: str = "Sum") -> cloudwatch.Metric:
    """One of the app's EMF metrics with the Stage dimension only (cold starts, logins)."""
    return cloudwatch.Metric(
        namespace=app_metrics.NAMESPACE,
        metric_name=name,
        dimensions_map={app_metrics.STAGE: stage},
        statistic=statistic,
        period=PERIOD,
    )


def latency_by_route(*, stage: str, statistic: str) -> cloudwatch.MathExpression:
    """One line per route and method: a search, so new routes appear without a deploy."""
    dimensions = ",".join(
        [app_metrics.NAMESPACE, app_metrics.METHOD, app_metrics.ROUTE, app_metrics.STAGE]
    )
    query = (
        f'{{{dimensions}}} MetricName="{app_metrics.REQUEST_LATENCY}" {app_metrics.STAGE}="{stage}"'
    )
    return cloudwatch.MathExpression(
        expression=f"SEARCH('{query}', '{statistic}', {int(PERIOD.to_seconds())})",
        label="",  # each line is labelled by its route and method
        period=PERIOD,
    )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        dashboard_name: str,
        http_api: apigw.HttpApi,
        api_function: lambda_.Function,
        migration_function: lambda_.Function,
        rotation_function: lambda_.Function,
        rotated_secret: secretsmanager.ISecret,
        database: rds.DatabaseInstance,
        proxy: rds.IDatabaseProxy,
        db_max_connections: int,
        api_reserved_concurrency: int | None,
        alarm_email: str | None,
        encryption_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)

        # Encrypted under the stack's key, whose policy lets CloudWatch alarms publish
        # (CloudWatch cannot use the AWS-managed SNS key).
        self.topic = sns.Topic(self, "AlarmTopic", enforce_ssl=True, master_key=encryption_key)
        # The topic's policy (made for enforce_ssl) replaces SNS's default one, which
        # let the account publish: without this statement no alarm notifies anyone.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsOfThisAccountPublish",
                principals=[cloudwatch_alarms()],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=this_accounts_alarms(Stack.of(self)),
            )
        )
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))

        api_timeout_ms = (api_function.timeout or Duration.seconds(3)).to_milliseconds()
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self.api_5xx_rate_alarm = self._alarm(
            "Api5xxRate",
            server_error_rate(http_api),
            threshold=API_5XX_RATE_PERCENT,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            description=(
                f"Over {API_5XX_RATE_PERCENT}% of the HTTP API's answers were 5XX in 2 of the "
                "last 3 minutes (a crash, a timeout or the database down)."
            ),
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
        # Runs once a month, so a failure nobody hears of leaves the key unrotated for
        # another 30 days; the rule below also hears of failures outside the function.
        self._alarm(
            "SigningKeyRotationErrors",
            rotation_function.metric_errors(period=PERIOD, statistic="Sum"),
            threshold=1,
            description=(
                "A step of the JWT signing key's rotation failed: AWSCURRENT stays on the "
                "working key; the function's log says why. Retry with `aws secretsmanager "
                "rotate-secret`."
            ),
        )
        self._notify_on_rotation_failure(rotated_secret)
        self._alarm(
            "DatabaseCpu",
            database.metric_cpu_utilization(period=PERIOD, statistic="Average"),
            threshold=80,
            evaluation_periods=3,
            description="Database CPU above 80% for 15 minutes.",
        )
        proxy_percent = proxy_max_connections_percent(proxy)
        client_ceiling, database_ceiling = connection_ceilings(
            db_max_connections=db_max_connections,
            proxy_percent=proxy_percent,
            api_reserved_concurrency=api_reserved_concurrency,
        )
        self._alarm(
            "DatabaseConnections",
            database.metric_database_connections(period=PERIOD, statistic="Maximum"),
            threshold=database_ceiling * NEAR_A_LIMIT_PERCENT // 100,
            evaluation_periods=2,
            description=(
                f"Database connections at {NEAR_A_LIMIT_PERCENT}% of the most the instance "
                f"can see ({database_ceiling}: the API's ceiling and what connects around "
                f"the proxy, within max_connections {db_max_connections}) for 10 minutes."
            ),
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

        self._alarm(
            "LoginLockoutSpike",
            app_metric(app_metrics.LOGIN_LOCKOUTS, stage=stage),
            threshold=LOCKOUT_SPIKE,
            description=(
                f"{LOCKOUT_SPIKE} or more login names were locked out within 5 minutes: "
                "someone is trying passwords on many accounts (credential stuffing)."
            ),
        )
        self._alarm(
            "MailFailures",
            app_metric(app_metrics.MAIL_FAILURES, stage=stage),
            threshold=1,
            description=(
                "A password-reset or verification email could not be sent (SES refused it "
                "or could not be reached): the API still answers, but nobody gets the link."
            ),
        )
        # A request borrows a database connection for its transaction: when every
        # client is busy at once the proxy needs as many database connections as it has
        # clients. Past what it may open, requests wait (borrow timeout), then fail with
        # 503; past the reserved concurrency, Lambda throttles. This fires at 80% of the
        # lower of the two (connection_ceilings).
        self._alarm(
            "ProxyClientConnections",
            proxy_client_connections(proxy),
            threshold=client_ceiling * NEAR_A_LIMIT_PERCENT // 100,
            # Ten one-minute readings: near the limit for ten minutes, not one burst.
            evaluation_periods=10,
            description=(
                f"RDS Proxy client connections near the API's ceiling ({client_ceiling}: the "
                f"lower of its reserved concurrency and the proxy's {proxy_percent}% of "
                "max_connections) for 10 minutes: requests at peak would be throttled or "
                "wait for a connection and fail."
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
            cloudwatch.GraphWidget(
                title="Proxy client connections",
                left=[proxy_client_connections(proxy)],
            ),
        )
        # The app's own metrics (EMF): latency as the app measured it, per route template.
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="App latency by route, p50 (ms)",
                left=[latency_by_route(stage=stage, statistic="p50")],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="App latency by route, p99 (ms)",
                left=[latency_by_route(stage=stage, statistic="p99")],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Cold starts",
                left=[app_metric(app_metrics.COLD_START, stage=stage)],
                right=[
                    app_metric(app_metrics.INIT_DURATION, stage=stage, statistic="p50"),
                    app_metric(app_metrics.INIT_DURATION, stage=stage, statistic="p99"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Logins failed and locked out",
                left=[
                    app_metric(app_metrics.LOGIN_FAILURES, stage=stage),
                    app_metric(app_metrics.LOGIN_LOCKOUTS, stage=stage),
                ],
            ),
            cloudwatch.GraphWidget(
                title="Account emails failed and throttled",
                left=[
                    app_metric(app_metrics.MAIL_FAILURES, stage=stage),
                    app_metric(app_metrics.ACCOUNT_EMAILS_THROTTLED, stage=stage),
                ],
            ),
        )

    def _notify_on_rotation_failure(self, secret: secretsmanager.ISecret) -> None:
        """Secrets Manager's own report of a failed rotation, forwarded to the topic.

        It also covers what the function's Errors can't see: an invocation that never
        ran (Lambda refused it). Delivered on a best-effort basis, as every CloudTrail
        event is.
        """
        # L1: the L2 SnsTopic target would grant EventBridge the topic and the key with no
        # condition; both grants are made here, for this rule and this account.
        rule = events.CfnRule(
            self,
            "SigningKeyRotationFailed",
            description="Secrets Manager reports that the JWT signing key's rotation failed",
            event_pattern=rotation_failures(secret),
            state="ENABLED",
            targets=[events.CfnRule.TargetProperty(id="AlarmTopic", arn=self.topic.topic_arn)],
        )
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="ThisStacksRotationFailureRulePublishes",
                principals=[eventbridge_rules()],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": Stack.of(self).account},
                    "ArnEquals": {"aws:SourceArn": rule.attr_arn},
                },
            )
        )

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
        datapoints_to_alarm: int | None = None,
        comparison: cloudwatch.ComparisonOperator = (
            cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        ),
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            comparison_operator=comparison,
            # No traffic is not an incident.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        alarm.add_ok_action(actions.SnsAction(self.topic))
        self.alarms[construct_id] = alarm
        return alarm
