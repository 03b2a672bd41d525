"""The templates pass cdk-nag (AwsSolutions), cfn-lint and checkov, every exception explained."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.api import ManualArgs, lint

from tests.infra.conftest import ROOT, Synth

MIN_REASON_LENGTH = 60  # a sentence a reviewer can check, not "needed" or "n/a"
CHECKOV_CONFIG = ROOT / ".checkov.yaml"


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


# --- checkov -----------------------------------------------------------------------------
# checkov runs in its own environment (the `checkov` dependency group, which uv.lock
# pins apart from dev and infra), once over six templates: each stage and the CI stack
# (infra_cdk/ci.py) as synthesized, with their per-resource skips, and each with the
# skips taken out ("raw"), which shows what every skip silences.

Findings = dict[str, list[dict[str, Any]]]  # "failed" / "skipped" -> checkov's results


def _uv() -> str:
    local = ROOT / ".tools" / "bin" / "uv"
    found = str(local) if local.is_file() else shutil.which("uv")
    assert found, "checkov runs through uv (`make install` puts it in .tools/bin)"
    return found


def _without_checkov_skips(template: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(template)
    for resource in raw["Resources"].values():
        resource.get("Metadata", {}).pop("checkov", None)
    return raw


def _run_checkov(templates: dict[str, Path]) -> dict[str, Findings]:
    command = [
        _uv(),
        "run",
        "--quiet",
        "--frozen",
        "--isolated",
        "--only-group=checkov",
        f"--python={sys.executable}",
        "checkov",
        f"--config-file={CHECKOV_CONFIG}",
        "--output=json",
        *(f"--file={path}" for path in templates.values()),
    ]
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    # checkov exits 1 when a check failed: the tests below say which.
    assert result.returncode in (0, 1), result.stderr[-3000:]
    reports = json.loads(result.stdout)  # a list only when several frameworks ran
    (report,) = reports if isinstance(reports, list) else [reports]
    assert report["check_type"] == "cloudformation"
    assert report["summary"]["parsing_errors"] == 0
    by_file = {path.resolve(): name for name, path in templates.items()}
    findings: dict[str, Findings] = {name: {"failed": [], "skipped": []} for name in templates}
    for kind in ("failed", "skipped"):
        for check in report["results"][f"{kind}_checks"]:
            findings[by_file[Path(check["file_abs_path"]).resolve()]][kind].append(check)
    return findings


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
    return _run_checkov(templates)


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
