"""The templates pass cdk-nag (AwsSolutions) and cfn-lint, with every exception explained."""

from __future__ import annotations

import json

from cfnlint.api import ManualArgs, lint

from tests.infra.conftest import Synth

MIN_REASON_LENGTH = 60  # a sentence a reviewer can check, not "needed" or "n/a"


def test_synth_has_no_unacknowledged_cdk_nag_findings(synth: Synth) -> None:
    report = synth.validation_report()
    failures = [
        (violation["ruleName"], [c["constructPath"] for c in violation["violatingConstructs"]])
        for plugin in report["pluginReports"]
        for violation in plugin.get("violations", [])
    ]
    assert synth.error is None and failures == [], f"{synth.error}\n{failures}"


def test_cdk_nag_pack_ran(synth: Synth) -> None:
    # Acknowledgments are written next to the resources only when the pack runs.
    acknowledged = {
        rule["id"]
        for resource in synth.resources.values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    }
    assert any(rule.startswith("AwsSolutions-") for rule in acknowledged)


def test_every_acknowledged_finding_carries_a_reason(synth: Synth) -> None:
    acknowledgments = [
        (logical_id, rule["id"], rule.get("reason", ""))
        for logical_id, resource in synth.resources.items()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
        if rule["id"].startswith("AwsSolutions-")
    ]
    assert acknowledgments
    unexplained = [a for a in acknowledgments if len(a[2].strip()) < MIN_REASON_LENGTH]
    assert unexplained == []


def test_no_wildcard_iam_acknowledgments(synth: Synth) -> None:
    # IAM5 (wildcard permissions) is never waved through: every grant is scoped.
    acknowledged = json.dumps(synth.template)
    assert "AwsSolutions-IAM5" not in acknowledged


def test_cfn_lint_finds_no_errors(synth: Synth) -> None:
    matches = lint(
        json.dumps(synth.template), config=ManualArgs(regions=["us-east-1", "eu-west-1"])
    )
    errors = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id.startswith("E")]
    assert errors == []
