"""The templates pass cdk-nag (AwsSolutions), cfn-lint and checkov, every exception explained."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.conftest import Synth
from tests.infra.template_checks import (
    CHECKOV_CONFIG,
    Findings,
    cdk_nag_failures,
    cfn_lint_errors,
    run_checkov,
)

MIN_REASON_LENGTH = 60  # a sentence a reviewer can check, not "needed" or "n/a"


def test_synth_has_no_unacknowledged_cdk_nag_findings(synth: Synth) -> None:
    failures = cdk_nag_failures(synth)
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
    assert cfn_lint_errors(synth.template) == []


# --- checkov -----------------------------------------------------------------------------
# checkov runs in its own environment (the `checkov` dependency group, which uv.lock
# pins apart from dev and infra), once over six templates: each stage and the CI stack
# (infra_cdk/ci.py) as synthesized, with their per-resource skips, and each with the
# skips taken out ("raw"), which shows what every skip silences.


def _without_checkov_skips(template: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(template)
    for resource in raw["Resources"].values():
        resource.get("Metadata", {}).pop("checkov", None)
    return raw


@pytest.fixture(scope="session")
def checkov(
    dev: Synth, prod: Synth, ci: Synth, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Findings]:
    """Findings per template: "dev", "prod" and "ci" as synthesized, and each "<name>-raw"."""
    out = tmp_path_factory.mktemp("checkov")
    templates: dict[str, Path] = {}
    for synth in (dev, prod, ci):
        for name, template in [
            (synth.stage, synth.template),
            (f"{synth.stage}-raw", _without_checkov_skips(synth.template)),
        ]:
            templates[name] = out / f"{name}.template.json"
            templates[name].write_text(json.dumps(template))
    return run_checkov(templates)


def _checks(findings: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(check["check_id"], check["resource"]) for check in findings}


def test_checkov_finds_no_failed_checks(synth: Synth, checkov: dict[str, Findings]) -> None:
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in checkov[synth.stage]["failed"]
    ]
    assert failed == []


def test_every_checkov_skip_carries_a_reason(synth: Synth, checkov: dict[str, Findings]) -> None:
    skipped = checkov[synth.stage]["skipped"]
    assert skipped  # the skips in the template's metadata were read
    unexplained = [
        (c["check_id"], c["resource"])
        for c in skipped
        if len(c["check_result"].get("suppress_comment", "").strip()) < MIN_REASON_LENGTH
    ]
    assert unexplained == []


def test_every_checkov_skip_silences_a_real_finding(
    synth: Synth, checkov: dict[str, Findings]
) -> None:
    # Without its skips, the template fails exactly the skipped checks: no skip is
    # stale, and none hides more than the one resource it names.
    raw_failures = _checks(checkov[f"{synth.stage}-raw"]["failed"])
    assert raw_failures == _checks(checkov[synth.stage]["skipped"])


def test_ci_stack_passes_checkov_with_no_skips(checkov: dict[str, Findings]) -> None:
    # The deploy role (infra_cdk/ci.py) needs no exception at all.
    assert _checks(checkov["ci-raw"]["failed"]) == set()
    assert _checks(checkov["ci"]["skipped"]) == set()


def test_checkov_config_skips_no_check_globally() -> None:
    # Skips belong on their resources; the config only says what runs (all of it).
    config = yaml.safe_load(CHECKOV_CONFIG.read_text())
    assert config["framework"] == ["cloudformation"]
    narrowing = {"skip-check", "skip_check", "check", "skip-path", "skip_path"}
    assert narrowing.isdisjoint(config)
