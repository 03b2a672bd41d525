"""Email (`-c email_from=no-reply@example.com -c frontend_url=https://app.example.com`):
the SES identity the API sends from, and its configuration set.

The API reaches SES through the VPC's interface endpoint for the SES API
(`com.amazonaws.<region>.email`, infra_cdk/constructs/network.py); the stack opens it
and grants `ses:SendEmail` on this identity only. docs/deploying.md, "Email".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ses as ses
from constructs import Construct

_ADDRESS = re.compile(r"[^@\s<>\"]+@([a-z0-9-]+(\.[a-z0-9-]+)+)")
_FRONTEND_URL = re.compile(r"https://[a-z0-9.-]+(:\d+)?(/[^\s?#]*)?")
IDENTITY_KINDS = ("address", "domain")


@dataclass(frozen=True)
class EmailConfig:
    """`email_from` (the sender), `frontend_url` (where links point) and `email_identity`:
    `address` (default: SES mails that address a link to confirm it) or `domain` (any
    address of its domain; you publish the three DKIM CNAMEs SES lists)."""

    sender: str
    frontend_url: str
    identity_kind: str = "address"
    # `-c require_verified_email=true`: logging in needs a verified email (REQUIRE_VERIFIED_EMAIL).
    require_verified_email: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "sender", self.sender.strip().lower())
        object.__setattr__(self, "frontend_url", self.frontend_url.strip().rstrip("/"))
        if not _ADDRESS.fullmatch(self.sender):
            raise ValueError(f"email_from {self.sender!r} is not an email address")
        if not _FRONTEND_URL.fullmatch(self.frontend_url):
            raise ValueError("frontend_url must be an https URL without query or fragment")
        if self.identity_kind not in IDENTITY_KINDS:
            raise ValueError(f"email_identity must be one of {', '.join(IDENTITY_KINDS)}")

    @property
    def domain(self) -> str:
        return self.sender.rpartition("@")[2]

    @classmethod
    def from_context(cls, context: Callable[[str], Any]) -> EmailConfig | None:
        """The config the CDK context values describe, or None without `email_from`."""
        sender = context("email_from")
        required = str(context("require_verified_email") or "false").strip().lower()
        if required not in ("true", "false"):
            raise ValueError("require_verified_email must be true or false")
        if not sender:
            if required == "true":
                raise ValueError("require_verified_email needs email_from: nobody could verify")
            return None
        frontend_url = context("frontend_url")
        if not frontend_url:
            raise ValueError("email_from needs frontend_url: the links in messages point at it")
        return cls(
            sender,
            frontend_url,
            context("email_identity") or "address",
            require_verified_email=required == "true",
        )


class Email(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: EmailConfig) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        # TLS to the recipient's server or no delivery (a reset link must not travel in
        # the clear), and addresses that bounced or complained are not mailed again.
        self.configuration_set = ses.ConfigurationSet(
            self,
            "ConfigurationSet",
            tls_policy=ses.ConfigurationSetTlsPolicy.REQUIRE,
            suppression_reasons=ses.SuppressionReasons.BOUNCES_AND_COMPLAINTS,
            reputation_metrics=True,
        )
        identity = (
            ses.Identity.domain(config.domain)
            if config.identity_kind == "domain"
            else ses.Identity.email(config.sender)
        )
        self.identity = ses.EmailIdentity(
            self, "Identity", identity=identity, configuration_set=self.configuration_set
        )

    @property
    def environment(self) -> dict[str, str]:
        """What the API function reads (lambda_app.core.settings.MailSettings)."""
        return {
            "EMAIL_BACKEND": "ses",
            "EMAIL_FROM": self.config.sender,
            "FRONTEND_URL": self.config.frontend_url,
            **({"REQUIRE_VERIFIED_EMAIL": "true"} if self.config.require_verified_email else {}),
        }

    @property
    def sending_arns(self) -> list[str]:
        """What a send names: this identity, and its configuration set."""
        configuration_set_arn = Stack.of(self).format_arn(
            service="ses",
            resource="configuration-set",
            resource_name=self.configuration_set.configuration_set_name,
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        return [self.identity.email_identity_arn, configuration_set_arn]

    def grant_send(self, grantee: iam.IGrantable) -> None:
        """`ses:SendEmail` from this identity, through its configuration set, and nothing else."""
        iam.Grant.add_to_principal(
            grantee=grantee, actions=["ses:SendEmail"], resource_arns=self.sending_arns
        )
