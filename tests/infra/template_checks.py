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


def endpoint_policy_problems(template: dict[str, Any]) -> list[str]:
    """VPC endpoints whose policy lets through more than named resources of this account.

    Without a policy an endpoint lets any principal call anything on any account's
    resources through it; each Allow must name its resources and the principal's account.
    """
    problems = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::EC2::VPCEndpoint":
            continue
        document = resource["Properties"].get("PolicyDocument")
        if document is None:
            problems.append(f"{logical_id}: no policy")
            continue
        for statement in document["Statement"]:
            if statement["Effect"] != "Allow":
                continue
            resources = statement.get("Resource", "*")
            resources = resources if isinstance(resources, list) else [resources]
            account = statement.get("Condition", {}).get("StringEquals", {})
            if "*" in resources or "*" in json.dumps(statement.get("Action")):
                problems.append(f"{logical_id}: {statement.get('Sid')} names no resource")
            if "aws:PrincipalAccount" not in account:
                problems.append(f"{logical_id}: {statement.get('Sid')} has no account condition")
    return problems


def operations_the_code_calls(service: str) -> set[str]:
    """The IAM actions of `service`'s API operations that lambda_app's code calls, found
    as method calls named as boto3 names them (`get_secret_value` -> GetSecretValue)."""
    import ast

    import botocore.session
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model(service)
    by_method = {xform_name(operation): operation for operation in model.operation_names}
    called = {
        node.func.attr
        for path in (ROOT / "lambda_app").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    prefix = model.signing_name  # sesv2's actions are ses:...
    return {f"{prefix}:{by_method[name]}" for name in called if name in by_method}
