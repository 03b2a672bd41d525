"""boto3 clients and Secrets Manager reads, for the credential sources that need AWS.

boto3 is imported when the first client is made, never at import: the `DATABASE_URL`
path and the local tools never load it, and init (what SnapStart snapshots) makes no
client. Lambda's Python runtime provides boto3; the bundles leave it out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

# botocore's DEBUG log prints request and response bodies: the very secrets fetched
# here. LOG_LEVEL=DEBUG on the root logger must not turn that on.
for _name in ("boto3", "botocore"):
    logging.getLogger(_name).setLevel(max(logging.INFO, logging.getLogger(_name).level))


class SecretFormatError(ValueError):
    """A secret that is not what we expect. The message never quotes the secret."""


def client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    # A few quick retries, not the SDK's patient defaults: this runs inside a
    # request that has its own deadline.
    config = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 3})
    return boto3.client(service, config=config)


def fetch_secret_string(arn: str) -> str:
    """The current `SecretString` of a Secrets Manager secret (one network call)."""
    return _secret_string(client("secretsmanager"), arn)


def secret_fetcher(arn: str) -> Callable[[], str]:
    """`fetch_secret_string(arn)` with one boto3 client kept for the process's later fetches."""
    secretsmanager: Any = None

    def fetch() -> str:
        nonlocal secretsmanager
        if secretsmanager is None:
            secretsmanager = client("secretsmanager")
        return _secret_string(secretsmanager, arn)

    return fetch


def _secret_string(secretsmanager: Any, arn: str) -> str:
    response = secretsmanager.get_secret_value(SecretId=arn)
    value = response.get("SecretString")
    if not isinstance(value, str):
        raise SecretFormatError(f"secret {arn} has no SecretString (binary secrets unsupported)")
    return value
