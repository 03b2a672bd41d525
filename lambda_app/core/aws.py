"""boto3 clients and Secrets Manager reads, for the credential sources that need AWS.

boto3 is imported when the first client is made, never at import: the `DATABASE_URL`
path and the local tools never load it, and init (what SnapStart snapshots) makes no
client. With SnapStart, a before-snapshot hook imports boto3 and loads the data files of
the clients the function will make (`load_clients_ahead`): no client, no credentials.
Lambda's Python runtime provides boto3; the bundles leave it out.
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


def client(
    service: str,
    *,
    attempts: int = 4,  # the first and three retries
    connect_timeout: float = 3.0,
    read_timeout: float = 5.0,
) -> Any:
    """A boto3 client of boto3's default session, with credentials as the provider chain
    finds them.

    By default a few quick attempts, not the SDK's patient defaults: this runs inside a
    request that has its own deadline. A caller whose answer must not wait on the
    service (a password recovery's mail) asks for one attempt and shorter timeouts."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"total_max_attempts": attempts},
    )
    return boto3.client(service, config=config)


def load_clients_ahead(services: Iterable[str]) -> None:
    """Import boto3 and read from disk what making these services' clients reads, so that
    the first real `client(service)` has only its credentials left to resolve.

    For a SnapStart before-snapshot hook: importing boto3 and making the first clients
    took about 250 ms of the first request after every restore. Only data is loaded: the
    service models, their endpoint rules and the shared endpoint and defaults files, into
    the botocore session that becomes boto3's default, which `client` uses. No client is
    made, because making one makes a TLS context, which seeds OpenSSL's random generator,
    and that state must not be in a snapshot (docs/snapstart.md). No credentials are looked
    up and nothing is called. Nothing here raises: a hook that raised would fail the
    snapshot, and with it the deployment, where data not loaded ahead only costs the first
    request that reads it.
    """
    try:
        import boto3
        import botocore.session

        session = botocore.session.get_session()
        boto3.setup_default_session(botocore_session=session)
        loader = session.get_component("data_loader")
        loader.load_data_with_path("endpoints")  # as the session's endpoint resolver reads it
        for name in ("partitions", "sdk-default-configuration"):
            loader.load_data(name)
        for service in services:
            session.get_service_model(service)  # its model, with the SDK's extras
            loader.load_service_model(service, "endpoint-rule-set-1")
    except Exception as error:  # no boto3, an unknown service: the first request will say so
        logger.warning("could not load boto3's data ahead (%s)", type(error).__name__)


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
