"""Email (`-c email_from=… -c frontend_url=…`): the SES identity, the private path to the
SES API, a grant on that identity only; nothing of it without `email_from`. And it passes
cdk-nag, cfn-lint and checkov like the stages without it (test_checks.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack

from infra_cdk.constructs.email import Email, EmailConfig
from tests.infra.conftest import PROD_OPTIONS, Synth, synthesize
from tests.infra.template_checks import (
    cdk_nag_failures,
    cfn_lint_errors,
    endpoint_policy_problems,
    operations_the_code_calls,
    run_checkov,
)

SENDER = "no-reply@example.com"
FRONTEND = "https://app.example.com"
ARN_PREFIX = "arn:aws:ses:us-east-1:123456789012:"  # the placeholder environment
EMAIL_OPTIONS = {"email_from": SENDER, "frontend_url": FRONTEND}


@pytest.fixture(scope="module")
def emailing(_no_aws_credentials: None, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize("prod", tmp_path_factory.mktemp("cdk-email"), **PROD_OPTIONS, **EMAIL_OPTIONS)


@pytest.fixture(scope="module")
def domain_emailing(_no_aws_credentials: None, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize(
        "dev", tmp_path_factory.mktemp("cdk-email-domain"), **EMAIL_OPTIONS, email_identity="domain"
    )


def _api(synth: Synth) -> tuple[str, dict[str, Any]]:
    functions = synth.of_type("AWS::Lambda::Function").items()
    ((logical_id, api),) = [
        (k, f) for k, f in functions if f["Properties"].get("Handler", "").endswith("api.handler")
    ]
    return logical_id, api["Properties"]


def _ses_endpoints(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        k: v
        for k, v in synth.of_type("AWS::EC2::VPCEndpoint").items()
        if json.dumps(v["Properties"]["ServiceName"]).rstrip('"]}').endswith(".email")
    }


def _statements_of(synth: Synth, role_logical_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in synth.of_type("AWS::IAM::Policy").values()
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_the_api_sends_from_the_identity_through_the_ses_api_endpoint(emailing: Synth) -> None:
    # the identity of the sender's address, with its TLS-only configuration set
    ((identity_id, identity),) = emailing.of_type("AWS::SES::EmailIdentity").items()
    assert identity["Properties"]["EmailIdentity"] == SENDER
    ((configuration_set_id, configuration_set),) = emailing.of_type(
        "AWS::SES::ConfigurationSet"
    ).items()
    assert configuration_set["Properties"]["DeliveryOptions"]["TlsPolicy"] == "REQUIRE"
    assert identity["Properties"]["ConfigurationSetAttributes"]["ConfigurationSetName"] == {
        "Ref": configuration_set_id
    }

    # the SES *API* endpoint (not email-smtp), in the isolated subnets, with private DNS
    (endpoint,) = _ses_endpoints(emailing).values()
    assert "email-smtp" not in json.dumps(endpoint)
    assert endpoint["Properties"]["PrivateDnsEnabled"] is True
    assert len(endpoint["Properties"]["SubnetIds"]) == 2

    # the API function is told to use it...
    _, api = _api(emailing)
    env = api["Environment"]["Variables"]
    assert (env["EMAIL_BACKEND"], env["EMAIL_FROM"], env["FRONTEND_URL"]) == (
        "ses",
        SENDER,
        FRONTEND,
    )
    # ...may send from this identity (and its configuration set) only...
    role_id = api["Role"]["Fn::GetAtt"][0]
    ses_statements = [
        s for s in _statements_of(emailing, role_id) if "ses:" in json.dumps(s["Action"])
    ]
    assert len(ses_statements) == 1
    (statement,) = ses_statements
    assert statement["Action"] == "ses:SendEmail" and statement["Effect"] == "Allow"
    assert statement["Resource"] == [
        {"Fn::Join": ["", [f"{ARN_PREFIX}configuration-set/", {"Ref": configuration_set_id}]]},
        {"Fn::Join": ["", [f"{ARN_PREFIX}identity/", {"Ref": identity_id}]]},
    ]

    # ...and reaches the endpoint on 443, the only way into it
    (endpoint_group,) = endpoint["Properties"]["SecurityGroupIds"]
    endpoint_sg_id = endpoint_group["Fn::GetAtt"][0]
    ingress = [
        r["Properties"]
        for r in emailing.of_type("AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [endpoint_sg_id, "GroupId"]}
    ]
    (api_group,) = api["VpcConfig"]["SecurityGroupIds"]
    assert [(r["FromPort"], r["SourceSecurityGroupId"]) for r in ingress] == [(443, api_group)]
    endpoint_sg = emailing.resources[endpoint_sg_id]["Properties"]
    assert endpoint_sg.get("SecurityGroupIngress", []) == []


def test_the_ses_endpoint_passes_the_codes_sends_from_the_identity_of_this_account_only(
    emailing: Synth, domain_emailing: Synth
) -> None:
    for synth in (emailing, domain_emailing):
        assert endpoint_policy_problems(synth.template) == []
        (endpoint,) = _ses_endpoints(synth).values()
        (statement,) = endpoint["Properties"]["PolicyDocument"]["Statement"]
        # every SES API v2 call of the code (a call left out fails on AWS only)
        called = operations_the_code_calls("sesv2")
        assert "ses:SendEmail" in called
        actions = statement["Action"]
        assert called <= set([actions] if isinstance(actions, str) else actions)
        assert statement["Condition"] == {
            "StringEquals": {"aws:PrincipalAccount": ARN_PREFIX.split(":")[4]}
        }
        # what the API's role may send from, and nothing more
        _, api = _api(synth)
        (granted,) = [
            s
            for s in _statements_of(synth, api["Role"]["Fn::GetAtt"][0])
            if "ses:" in json.dumps(s["Action"])
        ]
        assert sorted(map(json.dumps, statement["Resource"])) == sorted(
            map(json.dumps, granted["Resource"])
        )


def test_the_migration_function_gets_no_email(emailing: Synth) -> None:
    functions = emailing.of_type("AWS::Lambda::Function").values()
    (migration,) = [
        f for f in functions if f["Properties"].get("Handler", "").endswith("migrate.handler")
    ]
    assert not any(
        k.startswith("EMAIL") for k in migration["Properties"]["Environment"]["Variables"]
    )


def test_a_domain_identity_lets_any_address_of_the_domain_send(domain_emailing: Synth) -> None:
    ((identity_id, identity),) = domain_emailing.of_type("AWS::SES::EmailIdentity").items()
    assert identity["Properties"]["EmailIdentity"] == "example.com"
    _, api = _api(domain_emailing)
    assert api["Environment"]["Variables"]["EMAIL_FROM"] == SENDER
    role_id = api["Role"]["Fn::GetAtt"][0]
    (resources,) = [
        s["Resource"]
        for s in _statements_of(domain_emailing, role_id)
        if s["Action"] == "ses:SendEmail"
    ]
    assert {"Fn::Join": ["", [f"{ARN_PREFIX}identity/", {"Ref": identity_id}]]} in resources


def test_without_email_from_nothing_of_it_is_created(dev: Synth, prod: Synth) -> None:
    for synth in (dev, prod):
        assert synth.of_type("AWS::SES::EmailIdentity") == {}
        assert synth.of_type("AWS::SES::ConfigurationSet") == {}
        assert _ses_endpoints(synth) == {}
        _, api = _api(synth)
        # EMAIL_BACKEND unset on AWS: the app refuses to send, and says so (MailNotConfigured)
        assert not {"EMAIL_BACKEND", "EMAIL_FROM", "FRONTEND_URL"} & set(
            api["Environment"]["Variables"]
        )
        assert "ses:" not in json.dumps(synth.of_type("AWS::IAM::Policy"))


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"email_from": SENDER}, "needs frontend_url"),
        ({"email_from": SENDER, "frontend_url": "http://app.example.com"}, "https"),
        ({"email_from": SENDER, "frontend_url": f"{FRONTEND}/?a=1"}, "https"),
        ({"email_from": "no-reply", "frontend_url": FRONTEND}, "not an email address"),
        (
            {"email_from": SENDER, "frontend_url": FRONTEND, "email_identity": "dns"},
            "address, domain",
        ),
        ({"require_verified_email": "true"}, "needs email_from"),
        ({**EMAIL_OPTIONS, "require_verified_email": "yes"}, "true or false"),
    ],
)
def test_unfit_email_context_fails_the_synth(values: dict[str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        EmailConfig.from_context(values.get)


def test_requiring_verified_email_reaches_the_api_only_when_asked() -> None:
    asked = EmailConfig.from_context({**EMAIL_OPTIONS, "require_verified_email": "true"}.get)
    default = EmailConfig.from_context(EMAIL_OPTIONS.get)
    assert asked is not None and default is not None
    stack = Stack(App(), "EmailEnvironment")
    assert Email(stack, "Asked", config=asked).environment["REQUIRE_VERIFIED_EMAIL"] == "true"
    assert "REQUIRE_VERIFIED_EMAIL" not in Email(stack, "Default", config=default).environment


# --- the same checks as the stages without email ------------------------------------------


@pytest.fixture(scope="module", params=["emailing", "domain_emailing"])
def email_synth(request: pytest.FixtureRequest) -> Synth:
    return request.getfixturevalue(request.param)


def test_no_unacknowledged_cdk_nag_findings(email_synth: Synth) -> None:
    failures = cdk_nag_failures(email_synth)
    assert email_synth.error is None and failures == [], f"{email_synth.error}\n{failures}"


def test_cfn_lint_finds_no_errors(email_synth: Synth) -> None:
    assert cfn_lint_errors(email_synth.template) == []


def test_checkov_finds_no_failed_checks(emailing: Synth, tmp_path: Path) -> None:
    template = tmp_path / "email.template.json"
    template.write_text(json.dumps(emailing.template))
    findings = run_checkov({"email": template})
    failed = [f"{c['check_id']} {c['resource']}" for c in findings["email"]["failed"]]
    assert failed == []
