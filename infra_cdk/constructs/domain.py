"""A custom domain for the HTTP API: certificate, API Gateway domain name, mapping, DNS.

`https://api.example.com/` (or `/v1/` with a mapping key) in front of the API's `$default`
stage. Everything is named by context values, never looked up: the hosted zone is built
from its id (and name, if given), so synth stays hermetic.

Behind a mapping key the function still sees the key in the request path (`/v1/api/doc`)
without being told which part it is: the stack passes it as `API_BASE_PATH`
(`CustomDomainConfig.base_path`), and the handler makes it the ASGI `root_path`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as targets
from constructs import Construct

# What API Gateway accepts as an API mapping key (several levels for an HTTP API); the
# same rule as lambda_app.core.settings.ApiSettings.api_base_path, which reads it back.
_MAPPING_KEY = re.compile(r"[A-Za-z0-9$\-_.+!*'()]+(/[A-Za-z0-9$\-_.+!*'()]+)*")
_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")


@dataclass(frozen=True)
class CustomDomainConfig:
    """The `-c domain_name=… -c hosted_zone_id=…|certificate_arn=… [-c base_path=v1]` values."""

    domain_name: str
    hosted_zone_id: str | None = None
    hosted_zone_name: str | None = None  # only to check the domain is in the zone
    certificate_arn: str | None = None  # a certificate in the stack's region; else one is made
    base_path: str | None = None  # the API mapping key

    def __post_init__(self) -> None:
        object.__setattr__(self, "domain_name", self.domain_name.strip().rstrip(".").lower())
        object.__setattr__(self, "base_path", (self.base_path or "").strip("/") or None)
        if self.hosted_zone_name:
            zone_name = self.hosted_zone_name.strip().rstrip(".").lower()
            object.__setattr__(self, "hosted_zone_name", zone_name)
        if not _DOMAIN.fullmatch(self.domain_name):
            raise ValueError(f"domain_name {self.domain_name!r} is not a DNS name")
        if not (self.hosted_zone_id or self.certificate_arn):
            raise ValueError(
                "domain_name needs hosted_zone_id (a certificate validated in that zone and "
                "the alias records) or certificate_arn (an existing certificate; DNS is yours)"
            )
        zone = self.hosted_zone_name
        if zone and not (self.domain_name == zone or self.domain_name.endswith(f".{zone}")):
            raise ValueError(f"domain_name {self.domain_name!r} is not in {zone!r}")
        if self.base_path and (
            not _MAPPING_KEY.fullmatch(self.base_path)
            or any(not part.strip(".") for part in self.base_path.split("/"))
        ):
            raise ValueError(f"base_path {self.base_path!r} is not an API mapping key")

    @classmethod
    def from_context(cls, context: Callable[[str], Any]) -> CustomDomainConfig | None:
        """The config the CDK context values describe (`app.node.try_get_context`), if any."""
        domain_name = context("domain_name")
        if not domain_name:
            return None
        return cls(
            domain_name=domain_name,
            hosted_zone_id=context("hosted_zone_id"),
            hosted_zone_name=context("hosted_zone_name"),
            certificate_arn=context("certificate_arn"),
            base_path=context("base_path"),
        )

    @property
    def url(self) -> str:
        """The API's base URL on the domain, as clients call it."""
        return f"https://{self.domain_name}/" + (f"{self.base_path}/" if self.base_path else "")


class CustomDomain(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: CustomDomainConfig,
        http_api: apigw.IHttpApi,
        stage: apigw.IHttpStage,
    ) -> None:
        super().__init__(scope, construct_id)
        zone = None
        if config.hosted_zone_id:
            # From attributes, never HostedZone.from_lookup: no AWS call at synth.
            zone = (
                route53.HostedZone.from_hosted_zone_attributes(
                    self,
                    "Zone",
                    hosted_zone_id=config.hosted_zone_id,
                    zone_name=config.hosted_zone_name,
                )
                if config.hosted_zone_name
                else route53.HostedZone.from_hosted_zone_id(self, "Zone", config.hosted_zone_id)
            )

        if config.certificate_arn:
            certificate: acm.ICertificate = acm.Certificate.from_certificate_arn(
                self, "Certificate", config.certificate_arn
            )
        else:
            assert zone is not None  # (CustomDomainConfig wants one of the two)
            # ACM writes the validation record into the zone and renews it while it stays.
            certificate = acm.Certificate(
                self,
                "Certificate",
                domain_name=config.domain_name,
                validation=acm.CertificateValidation.from_dns(zone),
            )

        self.domain_name = apigw.DomainName(
            self,
            "DomainName",
            domain_name=config.domain_name,
            certificate=certificate,
            endpoint_type=apigw.EndpointType.REGIONAL,
            security_policy=apigw.SecurityPolicy.TLS_1_2,
            ip_address_type=apigw.IpAddressType.DUAL_STACK,
        )
        self.mapping = apigw.ApiMapping(
            self,
            "Mapping",
            api=http_api,
            domain_name=self.domain_name,
            stage=stage,
            api_mapping_key=config.base_path,
        )
        self.mapping.node.add_dependency(stage)  # "$default" is a literal: no implicit Ref

        if zone is not None:
            alias = route53.RecordTarget.from_alias(
                targets.ApiGatewayv2DomainProperties(
                    self.domain_name.regional_domain_name,
                    self.domain_name.regional_hosted_zone_id,
                )
            )
            # Fully qualified (trailing dot): CDK needs no zone name to place the record.
            record_name = f"{config.domain_name}."
            route53.ARecord(self, "AliasA", zone=zone, record_name=record_name, target=alias)
            route53.AaaaRecord(self, "AliasAAAA", zone=zone, record_name=record_name, target=alias)

        self.url = config.url
