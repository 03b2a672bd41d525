"""The custom domain (`-c domain_name=…`): what it creates, hermetically, and that it passes
cdk-nag, cfn-lint and checkov like the stages without one (test_checks.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra_cdk.constructs.domain import CustomDomainConfig
from tests.infra.conftest import Synth, synthesize
from tests.infra.template_checks import cdk_nag_failures, cfn_lint_errors, run_checkov

ZONE_ID = "Z0123456789ABCDEFGHIJ"
CERTIFICATE_ARN = (
    "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
)
# A zone we are given (never created), a certificate made and validated in it, a key.
ZONE_OPTIONS = {
    "domain_name": "api.example.com",
    "hosted_zone_id": ZONE_ID,
    "hosted_zone_name": "example.com",
    "base_path": "v1",
}
# An existing certificate and DNS kept elsewhere; the root of the domain.
CERTIFICATE_OPTIONS = {"domain_name": "api.example.com", "certificate_arn": CERTIFICATE_ARN}


@pytest.fixture(scope="module")
def zoned(_no_aws_credentials: None, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    zone = tmp_path_factory.mktemp("cdk-domain-zone")
    return synthesize("prod", zone, alarm_email="ops@example.com", **ZONE_OPTIONS)


@pytest.fixture(scope="module")
def certified(_no_aws_credentials: None, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize("dev", tmp_path_factory.mktemp("cdk-domain-cert"), **CERTIFICATE_OPTIONS)


@pytest.fixture(scope="module", params=["zoned", "certified"])
def domain_synth(request: pytest.FixtureRequest) -> Synth:
    return request.getfixturevalue(request.param)


def _one(synth: Synth, resource_type: str) -> dict[str, Any]:
    (resource,) = synth.of_type(resource_type).values()
    return resource["Properties"]


def _api_environment(synth: Synth) -> dict[str, Any]:
    functions = synth.of_type("AWS::Lambda::Function").values()
    (api,) = [f for f in functions if f["Properties"].get("Handler", "").endswith("api.handler")]
    return api["Properties"]["Environment"]["Variables"]


def _api_url(synth: Synth) -> Any:
    return synth.template["Outputs"]["ApiUrl"]["Value"]


# --- what gets created ---------------------------------------------------------------------


def test_a_zone_gives_a_dns_validated_certificate_the_domain_its_mapping_and_aliases(
    zoned: Synth,
) -> None:
    certificate = _one(zoned, "AWS::CertificateManager::Certificate")
    assert certificate["DomainName"] == "api.example.com"
    assert certificate["ValidationMethod"] == "DNS"
    assert certificate["DomainValidationOptions"] == [
        {"DomainName": "api.example.com", "HostedZoneId": ZONE_ID}
    ]

    domain = _one(zoned, "AWS::ApiGatewayV2::DomainName")
    assert domain["DomainName"] == "api.example.com"
    (configuration,) = domain["DomainNameConfigurations"]
    assert configuration["SecurityPolicy"] == "TLS_1_2"
    assert configuration["EndpointType"] == "REGIONAL"
    assert configuration["IpAddressType"] == "dualstack"

    mapping = _one(zoned, "AWS::ApiGatewayV2::ApiMapping")
    assert mapping["ApiMappingKey"] == "v1"
    assert mapping["Stage"] == "$default"

    records = {
        r["Type"]: r
        for r in (v["Properties"] for v in zoned.of_type("AWS::Route53::RecordSet").values())
    }
    assert set(records) == {"A", "AAAA"}
    for record in records.values():
        assert record["Name"] == "api.example.com."
        assert record["HostedZoneId"] == ZONE_ID
        assert "AliasTarget" in record
    assert zoned.of_type("AWS::Route53::HostedZone") == {}  # the zone is not ours


def test_the_mapping_key_reaches_the_function_and_the_url(zoned: Synth) -> None:
    assert _api_environment(zoned)["API_BASE_PATH"] == "v1"
    assert _api_url(zoned) == "https://api.example.com/v1/"


def test_a_given_certificate_is_used_and_no_dns_is_touched(certified: Synth) -> None:
    assert certified.of_type("AWS::CertificateManager::Certificate") == {}
    assert certified.of_type("AWS::Route53::RecordSet") == {}
    domain = _one(certified, "AWS::ApiGatewayV2::DomainName")
    (configuration,) = domain["DomainNameConfigurations"]
    assert configuration["CertificateArn"] == CERTIFICATE_ARN
    assert configuration["SecurityPolicy"] == "TLS_1_2"
    assert "ApiMappingKey" not in _one(certified, "AWS::ApiGatewayV2::ApiMapping")
    assert "API_BASE_PATH" not in _api_environment(certified)
    assert _api_url(certified) == "https://api.example.com/"


def test_the_mapping_waits_for_the_stage(domain_synth: Synth) -> None:
    (mapping,) = domain_synth.of_type("AWS::ApiGatewayV2::ApiMapping").values()
    (stage_id,) = domain_synth.of_type("AWS::ApiGatewayV2::Stage")
    assert stage_id in mapping.get("DependsOn", [])


def test_without_a_domain_nothing_of_it_is_created(dev: Synth, prod: Synth) -> None:
    for synth in (dev, prod):
        for resource_type in (
            "AWS::CertificateManager::Certificate",
            "AWS::ApiGatewayV2::DomainName",
            "AWS::ApiGatewayV2::ApiMapping",
            "AWS::Route53::RecordSet",
        ):
            assert synth.of_type(resource_type) == {}
        assert "API_BASE_PATH" not in _api_environment(synth)
        assert "execute-api" in json.dumps(_api_url(synth))


def test_synth_with_a_domain_looks_nothing_up(domain_synth: Synth) -> None:
    # A lookup (HostedZone.from_lookup) would leave a "missing" context entry for the CLI.
    manifest = json.loads((domain_synth.outdir / "manifest.json").read_text())
    assert manifest.get("missing", []) == []


# --- the same checks as the stages without a domain -----------------------------------------


def test_no_unacknowledged_cdk_nag_findings(domain_synth: Synth) -> None:
    failures = cdk_nag_failures(domain_synth)
    assert domain_synth.error is None and failures == [], f"{domain_synth.error}\n{failures}"


def test_cfn_lint_finds_no_errors(domain_synth: Synth) -> None:
    assert cfn_lint_errors(domain_synth.template) == []


def test_checkov_finds_no_failed_checks(domain_synth: Synth, tmp_path: Path) -> None:
    template = tmp_path / "domain.template.json"
    template.write_text(json.dumps(domain_synth.template))
    findings = run_checkov({"domain": template})
    failed = [f"{c['check_id']} {c['resource']}" for c in findings["domain"]["failed"]]
    assert failed == []


# --- the context values -------------------------------------------------------------------


def test_context_values_are_normalised() -> None:
    config = CustomDomainConfig(
        domain_name="API.Example.com.", hosted_zone_id=ZONE_ID, base_path="/orders/v2/"
    )
    assert config.domain_name == "api.example.com"
    assert config.base_path == "orders/v2"
    assert config.url == "https://api.example.com/orders/v2/"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"domain_name": "api.example.com"}, "hosted_zone_id"),
        (
            {
                "domain_name": "api.example.com",
                "hosted_zone_id": ZONE_ID,
                "hosted_zone_name": "example.org",
            },
            "not in",
        ),
        (
            {
                "domain_name": "api.example.com",
                "certificate_arn": CERTIFICATE_ARN,
                "base_path": "v 1",
            },
            "mapping key",
        ),
        (
            {
                "domain_name": "api.example.com",
                "certificate_arn": CERTIFICATE_ARN,
                "base_path": "a/../b",
            },
            "mapping key",
        ),
        (
            {"domain_name": "https://api.example.com", "certificate_arn": CERTIFICATE_ARN},
            "DNS name",
        ),
    ],
)
def test_incomplete_or_wrong_context_values_fail_the_synth(
    values: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        CustomDomainConfig(**values)


def test_a_zone_id_alone_is_enough(_no_aws_credentials: None) -> None:
    from aws_cdk import App, Stack
    from aws_cdk import aws_apigatewayv2 as apigw
    from aws_cdk.assertions import Template

    from infra_cdk.constructs.domain import CustomDomain

    stack = Stack(App(), "Bare")
    api = apigw.HttpApi(stack, "Api", create_default_stage=False)
    stage = apigw.HttpStage(stack, "Stage", http_api=api, stage_name="$default")
    domain = CustomDomain(
        stack,
        "Domain",
        config=CustomDomainConfig(domain_name="api.example.com", hosted_zone_id=ZONE_ID),
        http_api=api,
        stage=stage,
    )

    template = Template.from_stack(stack)
    template.resource_count_is("AWS::Route53::RecordSet", 2)
    template.has_resource_properties(
        "AWS::Route53::RecordSet", {"Name": "api.example.com.", "Type": "AAAA"}
    )
    assert domain.url == "https://api.example.com/"
