"""TLS to the database (`DB_SSL`): verify-full against the bundled RDS CAs, or encrypted only.

`certs/rds-ca-bundle.pem` holds the RDS certificate authorities (regional CAs and the
Amazon roots that sign RDS Proxy certificates); see `certs/README.md`.
"""

from __future__ import annotations

import functools
import ssl
from pathlib import Path

from lambda_app.core.settings import DbSslMode

RDS_CA_BUNDLE = Path(__file__).resolve().parent / "certs" / "rds-ca-bundle.pem"


def ssl_argument(mode: DbSslMode) -> ssl.SSLContext | bool:
    """asyncpg's `ssl=` argument for a `DB_SSL` mode."""
    if mode is DbSslMode.DISABLE:
        return False
    if mode is DbSslMode.REQUIRE:
        return encrypted_unverified_context()
    return rds_verify_full_context()


@functools.cache
def rds_verify_full_context() -> ssl.SSLContext:
    """Certificate chain and host name checked against the bundled RDS CAs (once per process).

    Only the bundle is trusted, not the system store: the server must be RDS or
    RDS Proxy, and the host name we dialled must be on its certificate.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(RDS_CA_BUNDLE))
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@functools.cache
def encrypted_unverified_context() -> ssl.SSLContext:
    # Built by hand: asyncpg's own "require" silently upgrades to verify-ca when
    # ~/.postgresql/root.crt exists, which is not what DB_SSL=require promises.
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
