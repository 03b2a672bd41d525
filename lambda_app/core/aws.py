"""boto3 clients and Secrets Manager reads, for the credential sources that need AWS.

boto3 is imported when the first client is made, never at import: the `DATABASE_URL`
path and the local tools never load it, and init (what SnapStart snapshots) makes no
client. With SnapStart, a before-snapshot hook loads boto3 and the models of the clients
the function will make (`load_clients_ahead`), but no credentials and no client. Lambda's
Python runtime provides boto3; the bundles leave it out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

# botocore's DEBUG log prints request and response bodies: the very secrets fetched
# here. LOG_LEVEL=DEBUG on the root logger must not turn that on.
for _name in ("boto3", "botocore"):
    logging.getLogger(_name).setLevel(max(logging.INFO, logging.getLogger(_name).level))


class SecretFormatError(ValueError):
    """A secret that is not what we expect. The message never quotes the secret."""


logger = logging.getLogger(__name__)


def client(service: str, **credentials: str) -> Any:
    import boto3
    from botocore.config import Config

    # A few quick retries, not the SDK's patient defaults: this runs inside a
    # request that has its own deadline.
    config = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 3})
    return boto3.client(service, config=config, **credentials)


def load_clients_ahead(services: Iterable[str]) -> None:
    """Import boto3 and read what making these services' clients reads from disk, so that
    the first real `client(service)` has only its credentials left to resolve.

    For a SnapStart before-snapshot hook: importing boto3 and making a first `rds` client
    took about 250 ms of the first request after every restore. Each client is made with
    placeholder credentials and dropped: with credentials given, botocore looks none up
    and calls nothing, and the real ones must be resolved after the restore anyway. The
    service models and endpoint rules stay in boto3's default session, which `client`
    uses. Nothing here raises: a hook that raised would fail the snapshot, and with it the
    deployment, where a client not loaded ahead only costs its first request that time.
    """
    for service in services:
        try:
            # Not a credential: the client is dropped before it could sign anything.
            client(service, aws_access_key_id="unused", aws_secret_access_key="unused")  # noqa: S106
        except Exception as error:  # no boto3, no region: the first request will say so
            logger.warning("could not load the %s client ahead (%s)", service, type(error).__name__)


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
