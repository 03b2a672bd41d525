"""The app's metrics on the dashboard, and the alarms built on rates and limits."""

from __future__ import annotations

import json
from typing import Any

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
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
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


def test_proxy_client_connections_alarm_stays_under_what_the_proxy_may_open(synth: Synth) -> None:
    alarm = _alarm(synth, "MonitoringProxyClientConnections")
    assert alarm["MetricName"] == "ClientConnections" and alarm["Statistic"] == "Sum"
    # One datapoint per proxy node per minute: a one-minute Sum is the connections
    # (over five minutes it would be five times as many).
    assert alarm["Period"] == 60 and alarm["EvaluationPeriods"] > 1
    (group,) = synth.of_type("AWS::RDS::DBProxyTargetGroup").values()
    percent = group["Properties"]["ConnectionPoolConfigurationInfo"]["MaxConnectionsPercent"]
    db_alarm = _alarm(synth, "MonitoringDatabaseConnections")  # ~80% of max_connections
    assert alarm["Threshold"] == int(db_alarm["Threshold"] * percent / 100)
    (proxy,) = synth.of_type("AWS::RDS::DBProxy")
    assert alarm["Dimensions"] == [{"Name": "ProxyName", "Value": {"Ref": proxy}}]


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
