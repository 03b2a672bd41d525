"""The three scanners every synthesized template must pass, one way to run each.

cdk-nag runs during synth (its findings are in the validation report); cfn-lint and
checkov run over the template here. checkov has its own environment (the `checkov`
dependency group, which uv.lock pins apart from dev and infra).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from cfnlint.api import ManualArgs, lint

from tests.infra.conftest import ROOT, Synth

CHECKOV_CONFIG = ROOT / ".checkov.yaml"

Findings = dict[str, list[dict[str, Any]]]  # "failed" / "skipped" -> checkov's results


def cdk_nag_failures(synth: Synth) -> list[tuple[str, list[str]]]:
    """Unacknowledged findings: (rule, construct paths)."""
    return [
        (violation["ruleName"], [c["constructPath"] for c in violation["violatingConstructs"]])
        for plugin in synth.validation_report()["pluginReports"]
        for violation in plugin.get("violations", [])
    ]


def cfn_lint_errors(template: dict[str, Any]) -> list[str]:
    matches = lint(json.dumps(template), config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    return [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id.startswith("E")]


def _uv() -> str:
    local = ROOT / ".tools" / "bin" / "uv"
    found = str(local) if local.is_file() else shutil.which("uv")
    assert found, "checkov runs through uv (`make install` puts it in .tools/bin)"
    return found


def run_checkov(templates: dict[str, Path]) -> dict[str, Findings]:
    """One checkov run over these template files; the findings per template name."""
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
    # checkov exits 1 when a check failed: the callers say which.
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
