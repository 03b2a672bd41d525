"""The app's metrics on the dashboard, and the alarms built on rates and limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambda_app.core import metrics
from tests.infra.conftest import Synth


def _alarm(synth: Synth, prefix: str) -> dict[str, Any]:
    found = [
        v["Properties"]
        for k, v in synth.of_type("AWS::CloudWatch::Alarm").items()
        if k.startswith(prefix)
    ]
    assert len(found) == 1, prefix
    return found[0]


def _topic(synth: Synth) -> dict[str, str]:
    (topic,) = [k for k in synth.of_type("AWS::SNS::Topic") if k.startswith("MonitoringAlarmTopic")]
    return {"Ref": topic}


def test_api_5xx_alarm_is_a_rate_of_the_http_apis_requests(synth: Synth) -> None:
    alarm = _alarm(synth, "MonitoringApi5xxRate")
    queries = {q["Id"]: q for q in alarm["Metrics"]}
    expression = queries[next(i for i, q in queries.items() if "Expression" in q)]["Expression"]
    assert "errors / requests" in expression
    names = {
        q["Id"]: (q["MetricStat"]["Metric"]["Namespace"], q["MetricStat"]["Metric"]["MetricName"])
        for q in alarm["Metrics"]
        if "MetricStat" in q
    }
    assert names == {"errors": ("AWS/ApiGateway", "5xx"), "requests": ("AWS/ApiGateway", "Count")}
    assert all(q["MetricStat"]["Stat"] == "Sum" for q in alarm["Metrics"] if "MetricStat" in q)
    assert 0 < alarm["Threshold"] <= 10  # percent
    assert alarm["AlarmActions"] == [_topic(synth)]


def test_lockout_spike_alarm_watches_the_apps_metric(synth: Synth) -> None:
    alarm = _alarm(synth, "MonitoringLoginLockoutSpike")
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        metrics.NAMESPACE,
        metrics.LOGIN_LOCKOUTS,
    )
    assert alarm["Dimensions"] == [{"Name": metrics.STAGE, "Value": synth.stage}]
    assert alarm["Statistic"] == "Sum" and alarm["Threshold"] >= 2


def test_mail_failures_alarm_fires_on_the_first_one(synth: Synth) -> None:
    alarm = _alarm(synth, "MonitoringMailFailures")
    assert (alarm["Namespace"], alarm["MetricName"]) == (metrics.NAMESPACE, metrics.MAIL_FAILURES)
    assert alarm["Dimensions"] == [{"Name": metrics.STAGE, "Value": synth.stage}]
    assert alarm["Statistic"] == "Sum" and alarm["Threshold"] == 1
    assert alarm["AlarmActions"] == [_topic(synth)]


def test_cloudwatch_alarms_of_this_account_may_publish_to_the_topic_over_tls_only(
    synth: Synth,
) -> None:
    # The topic policy replaces SNS's default one: what it does not allow, nobody may do.
    (policy,) = synth.of_type("AWS::SNS::TopicPolicy").values()
    assert policy["Properties"]["Topics"] == [_topic(synth)]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    # (the only other Allow: EventBridge, for one rule, in the rotation-failure test below)
    (allow,) = [
        s
        for s in statements
        if s["Effect"] == "Allow" and s["Principal"] != {"Service": "events.amazonaws.com"}
    ]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish" and allow["Resource"] == _topic(synth)
    assert allow["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "123456789012"},
        "ArnLike": {"aws:SourceArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:*"},
    }
    # the same alarms the key lets encrypt the topic's messages (both must allow)
    (key,) = synth.of_type("AWS::KMS::Key").values()
    (key_statement,) = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s["Principal"] == allow["Principal"]
    ]
    assert key_statement["Condition"] == allow["Condition"]
    (deny,) = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Principal"] == "*" and deny["Resource"] == _topic(synth)


# What RDS's default formula gives these classes, less a margin: it divides the memory
# left after the OS and RDS's own processes (DBInstanceClassMemory), not the nominal GiB,
# so a db.t4g.micro reports about 80-87, not the ~110 its 1 GiB would suggest.
MAX_CONNECTIONS_A_CLASS_SUPPORTS = {"db.t4g.micro": 80, "db.t4g.small": 180}


def _max_connections(synth: Synth) -> int:
    """max_connections as the template pins it in the instance's parameter group."""
    ((instance_id, instance),) = synth.of_type("AWS::RDS::DBInstance").items()
    group_ref = instance["Properties"]["DBParameterGroupName"]["Ref"]
    group = synth.resources[group_ref]
    assert group["Type"] == "AWS::RDS::DBParameterGroup", instance_id
    return int(group["Properties"]["Parameters"]["max_connections"])


def test_max_connections_is_pinned_to_what_the_instance_class_supports(synth: Synth) -> None:
    (instance,) = synth.of_type("AWS::RDS::DBInstance").values()
    instance_class = instance["Properties"]["DBInstanceClass"]
    assert 0 < _max_connections(synth) <= MAX_CONNECTIONS_A_CLASS_SUPPORTS[instance_class]


def test_a_max_connections_that_leaves_no_room_beside_the_proxy_is_refused() -> None:
    from infra_cdk.constructs.database import proxy_pool_size

    assert proxy_pool_size(80) == 72  # 8 left: 5 reserved slots, 2 for a migration, 1 psql
    with pytest.raises(ValueError, match="leaves 2 connections"):
        proxy_pool_size(20)


def _proxy_pool(synth: Synth) -> int:
    """The database connections RDS Proxy may open, as its target group says."""
    (group,) = synth.of_type("AWS::RDS::DBProxyTargetGroup").values()
    percent = group["Properties"]["ConnectionPoolConfigurationInfo"]["MaxConnectionsPercent"]
    return _max_connections(synth) * percent // 100


def _api_function(synth: Synth) -> dict[str, Any]:
    (function,) = [
        v["Properties"]
        for k, v in synth.of_type("AWS::Lambda::Function").items()
        if k.startswith("ApiFunction")
    ]
    return function


def _most_proxy_clients(synth: Synth) -> int:
    """What the API can hold at once: one client connection (and at most one database
    connection) per running request, so no more than its reserved concurrency, and no
    more than the proxy may open for it."""
    reserved = _api_function(synth).get("ReservedConcurrentExecutions", _proxy_pool(synth))
    return min(_proxy_pool(synth), reserved)


def test_database_connections_alarm_fires_at_80_percent_of_what_the_instance_can_see(
    synth: Synth,
) -> None:
    from infra_cdk.constructs.database import CONNECTIONS_AROUND_THE_PROXY

    alarm = _alarm(synth, "MonitoringDatabaseConnections")
    assert alarm["MetricName"] == "DatabaseConnections"
    # the proxy's connections for the API, and the few the instance keeps room for beside it
    most = min(_max_connections(synth), _most_proxy_clients(synth) + CONNECTIONS_AROUND_THE_PROXY)
    assert alarm["Threshold"] == most * 80 // 100


def test_a_failed_signing_key_rotation_step_alarms(synth: Synth) -> None:
    (function,) = [
        k for k in synth.of_type("AWS::Lambda::Function") if k.startswith("JwtSecretRotation")
    ]
    alarm = _alarm(synth, "MonitoringSigningKeyRotationErrors")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Lambda", "Errors")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
    assert alarm["Statistic"] == "Sum" and alarm["Threshold"] == 1
    assert alarm["AlarmActions"] == [_topic(synth)]


def test_a_rotation_failure_secrets_manager_reports_reaches_the_alarm_topic(
    synth: Synth,
) -> None:
    # given: the rule for this stack's JWT secret, as CloudTrail delivers Secrets Manager's
    # own rotation events (not API calls) to the default event bus
    (jwt,) = [k for k in synth.of_type("AWS::SecretsManager::Secret") if k.startswith("JwtSecret")]
    ((rule_id, rule),) = synth.of_type("AWS::Events::Rule").items()
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.secretsmanager"],
        "detail-type": ["AWS Service Event via CloudTrail"],
        "detail": {
            "eventSource": ["secretsmanager.amazonaws.com"],
            "eventName": ["RotationFailed"],
            "additionalEventData": {"SecretId": [{"Ref": jwt}]},
        },
    }
    assert rule["Properties"].get("EventBusName", "default") == "default"
    assert [t["Arn"] for t in rule["Properties"]["Targets"]] == [_topic(synth)]

    # then: EventBridge may publish to the topic, for this rule only...
    (policy,) = synth.of_type("AWS::SNS::TopicPolicy").values()
    (allow,) = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow" and s["Principal"] == {"Service": "events.amazonaws.com"}
    ]
    assert allow["Action"] == "sns:Publish" and allow["Resource"] == _topic(synth)
    assert allow["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "123456789012"},
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}},
    }
    # ...and use the key SNS encrypts its messages with, for this account's rules
    (key,) = synth.of_type("AWS::KMS::Key").values()
    (key_statement,) = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s["Principal"] == {"Service": "events.amazonaws.com"}
    ]
    assert set(key_statement["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert key_statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "123456789012"},
        "ArnLike": {"aws:SourceArn": "arn:aws:events:us-east-1:123456789012:rule/*"},
    }


def test_proxy_client_connections_alarm_fires_at_80_percent_of_what_the_api_can_hold(
    synth: Synth,
) -> None:
    alarm = _alarm(synth, "MonitoringProxyClientConnections")
    assert alarm["MetricName"] == "ClientConnections" and alarm["Statistic"] == "Sum"
    # One datapoint per proxy node per minute: a one-minute Sum is the connections
    # (over five minutes it would be five times as many).
    assert alarm["Period"] == 60 and alarm["EvaluationPeriods"] > 1
    # below the reserved concurrency where that is the lower limit (prod), or it never fires
    assert alarm["Threshold"] == _most_proxy_clients(synth) * 80 // 100
    (proxy,) = synth.of_type("AWS::RDS::DBProxy")
    assert alarm["Dimensions"] == [{"Name": "ProxyName", "Value": {"Ref": proxy}}]


def test_prods_reserved_concurrency_gets_a_database_connection_for_every_request(
    prod: Synth,
) -> None:
    # Each running request borrows one database connection through the proxy.
    assert _api_function(prod)["ReservedConcurrentExecutions"] <= _proxy_pool(prod)


def _dashboard_widgets(synth: Synth) -> list[dict[str, Any]]:
    (dashboard,) = synth.of_type("AWS::CloudWatch::Dashboard").values()
    # The body is JSON joined around references (the region, the proxy's name).
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    body = "".join(p if isinstance(p, str) else "ref" for p in parts)
    return list(json.loads(body)["widgets"])


def test_dashboard_shows_latency_by_route_cold_starts_and_lockouts(synth: Synth) -> None:
    widgets = {w["properties"].get("title"): w["properties"] for w in _dashboard_widgets(synth)}
    for statistic in ("p50", "p99"):
        (search,) = widgets[f"App latency by route, {statistic} (ms)"]["metrics"]
        expression = search[0]["expression"]
        assert expression.startswith("SEARCH(")
        assert f'MetricName="{metrics.REQUEST_LATENCY}"' in expression
        assert f'{metrics.STAGE}="{synth.stage}"' in expression
        assert (
            f"{{{metrics.NAMESPACE},{metrics.METHOD},{metrics.ROUTE},{metrics.STAGE}}}"
            in expression
        )
        assert f"'{statistic}'" in expression
    cold = json.dumps(widgets["Cold starts"]["metrics"])
    assert metrics.COLD_START in cold and metrics.INIT_DURATION in cold
    logins = json.dumps(widgets["Logins failed and locked out"]["metrics"])
    assert metrics.LOGIN_LOCKOUTS in logins and metrics.LOGIN_FAILURES in logins
    assert metrics.NAMESPACE in logins and synth.stage in logins
    emails = json.dumps(widgets["Account emails failed and throttled"]["metrics"])
    assert metrics.MAIL_FAILURES in emails and metrics.ACCOUNT_EMAILS_THROTTLED in emails


def test_the_dashboard_counts_proxy_connections_per_minute(synth: Synth) -> None:
    widgets = {w["properties"].get("title"): w["properties"] for w in _dashboard_widgets(synth)}
    for title, metric_name in (
        ("Proxy client connections", "ClientConnections"),
        ("Proxy connections pinned to a session", "DatabaseConnectionsCurrentlySessionPinned"),
    ):
        (metric,) = widgets[title]["metrics"]
        assert metric[:2] == ["AWS/RDS", metric_name]
        assert metric[-1] == {"period": 60, "stat": "Sum"}
