"""The stack's options outside the template: a deploy that leaves one out removes what it
made, so CI passes every one, and prod refuses to deploy without an alarm address."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.infra.conftest import ROOT, cdk_json_context

DEPLOY_WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"
# What every stack reads besides its options: the stage, the release, and the names that
# add the separate CI stack (which the prod deploy does not deploy).
NOT_STACK_OPTIONS = {"stage", "release_id", "github_repository", "github_oidc_provider_arn"}
# Overrides for the one deploy that names them: CI never passes one, so the next deploy is
# back to normal whatever was set by hand (a secret could leave it on for every deploy).
ONE_DEPLOY_OPTIONS = {"deployment_alarms"}
# Values that make the app read every option it knows (the domain's and the email's
# follow-up options are read only when those are given).
EVERY_OPTION_READ = {
    "alarm_email": "ops@example.com",
    "domain_name": "api.example.com",
    "hosted_zone_id": "Z0123456789ABCDEFGHIJ",
    "email_from": "no-reply@example.com",
    "frontend_url": "https://app.example.com",
}
OPTION = re.compile(r'-c "(?P<name>[a-z_]+)=\$(?P<variable>[A-Z_]+)"')


def _build(stage: str, **options: str) -> None:
    from aws_cdk import App

    from infra_cdk.app import build_app

    context = {**cdk_json_context(), "stage": stage, "aws:cdk:bundling-stacks": [], **options}
    build_app(App(context=context))  # the stack is built, never synthesized


def _options_read(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The names the app asks its context for while building the prod stack."""
    import infra_cdk.app

    asked: set[str] = set()
    reader = infra_cdk.app.context_reader

    def recording_reader(app: Any) -> Callable[[str], Any]:
        read = reader(app)

        def context(name: str) -> Any:
            asked.add(name)
            return read(name)

        return context

    monkeypatch.setattr(infra_cdk.app, "context_reader", recording_reader)
    _build("prod", **EVERY_OPTION_READ)
    return asked - NOT_STACK_OPTIONS


def _prod_deploy_step() -> dict[str, Any]:
    jobs = yaml.safe_load(DEPLOY_WORKFLOW.read_text())["jobs"]
    (step,) = [s for s in jobs["prod"]["steps"] if "cdk deploy" in s.get("run", "")]
    return dict(step)


def test_the_prod_deploy_passes_every_option_of_the_stack(
    _no_aws_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the options the app reads
    read = _options_read(monkeypatch)
    assert {"alarm_email", "first_superuser_email", "domain_name", "email_from"} <= read
    # when the prod job deploys
    step = _prod_deploy_step()
    passed = {
        m["name"]: m["variable"]
        for m in OPTION.finditer(step["run"])
        if m["name"] not in NOT_STACK_OPTIONS
    }
    # then it passes each one, from the production environment's secret of that name
    assert read >= ONE_DEPLOY_OPTIONS
    assert set(passed) == read - ONE_DEPLOY_OPTIONS
    for name, variable in passed.items():
        assert variable == name.upper()
        assert step["env"][variable] == f"${{{{ secrets.{variable} }}}}"
    # and never a one-deploy override
    assert not [name for name in ONE_DEPLOY_OPTIONS if name in step["run"]]


@pytest.mark.parametrize("value", ["off", "true", "ignored"])
def test_a_deployment_alarms_value_other_than_ignore_stops_the_synth(
    _no_aws_credentials: None, value: str
) -> None:
    with pytest.raises(ValueError, match=f"deployment_alarms='{value}': the only value is"):
        _build("dev", deployment_alarms=value)


@pytest.mark.parametrize("options", [{}, {"alarm_email": ""}])
def test_prod_does_not_synthesize_without_an_alarm_email(
    _no_aws_credentials: None, options: dict[str, str]
) -> None:
    with pytest.raises(ValueError, match="stage prod needs -c alarm_email=<address>"):
        _build("prod", **options)


def test_an_empty_option_counts_as_not_given() -> None:
    # The workflow passes `-c domain_name=` when the environment has no DOMAIN_NAME.
    from aws_cdk import App

    from infra_cdk.app import context_reader

    context = context_reader(App(context={"domain_name": "", "alarm_email": "ops@example.com"}))
    assert context("domain_name") is None and context("base_path") is None
    assert context("alarm_email") == "ops@example.com"
