"""TLS to the database: `DB_SSL` (verify-full against the bundled RDS CAs, or encrypted
only), or the mode a `DATABASE_URL` names. Either way a context is built once, not for
every connection.

`certs/rds-ca-bundle.pem` holds the RDS certificate authorities (regional CAs and the
Amazon roots that sign RDS Proxy certificates); see `certs/README.md`.
"""

from __future__ import annotations

import functools
import os
import re
import ssl
from pathlib import Path
from typing import Any

from asyncpg import connect_utils
from asyncpg.exceptions import ClientConfigurationError

from lambda_app.core.settings import DbSslMode
from lambda_app.db.plan import DatabaseNotConfigured

RDS_CA_BUNDLE = Path(__file__).resolve().parent / "certs" / "rds-ca-bundle.pem"


def ssl_argument(mode: DbSslMode, *, host: str | None = None) -> ssl.SSLContext | bool:
    """asyncpg's `ssl=` argument for a `DB_SSL` mode, dialling `host` (if known ahead)."""
    if mode is DbSslMode.DISABLE:
        return False
    if mode is DbSslMode.REQUIRE:
        return encrypted_unverified_context()
    return rds_verify_full_context(trusted_region(host))


# An AWS region's name: eu-west-1, us-gov-west-1, eusc-de-east-1.
_REGION = r"(?P<region>[a-z]+(?:-[a-z]+)*-\d+)"
# An RDS or RDS Proxy endpoint's name ends with its region:
# app.proxy-abc123.eu-west-1.rds.amazonaws.com, app.c9akciq32.eu-west-1.rds.amazonaws.com
_RDS_ENDPOINT = re.compile(rf"\.{_REGION}\.rds\.amazonaws\.com\.?$")


def trusted_region(host: str | None) -> str | None:
    """Whose RDS CAs verify-full trusts: the region an RDS endpoint's name says, else the
    function's own (`AWS_REGION`, which Lambda sets); None, neither known: every region's."""
    endpoint = _RDS_ENDPOINT.search(host or "")
    return endpoint["region"] if endpoint else os.environ.get("AWS_REGION")


@functools.cache
def rds_verify_full_context(region: str | None) -> ssl.SSLContext:
    """Certificate chain and host name checked against the bundled RDS CAs that an endpoint
    in `region` can present (once per process and region; None: all of them).

    Only the bundle is trusted, not the system store: the server must be RDS or
    RDS Proxy, and the host name we dialled must be on its certificate.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=rds_cas(region))
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


# A certificate of the bundle, under the line that names it (certs/README.md).
_LABELLED_CERTIFICATE = re.compile(
    r"^# (?P<name>[^\n]+)\n"
    r"(?P<pem>-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----)$",
    re.MULTILINE,
)
# "Amazon RDS eu-west-1 Root CA RSA2048 G1", "Amazon RDS Beta us-east-1 2019 CA"; not
# "Amazon RDS Root 2019 CA" or "Amazon Root CA 1", which are named for no region.
_LABEL_REGION = re.compile(rf"^Amazon RDS (?:Beta |Preview )?{_REGION} ")


def rds_cas(region: str | None) -> str:
    """The bundle's CAs, as PEM, that an endpoint in `region` can present: those named for
    that region and the eight named for none (the Amazon roots that sign RDS Proxy
    certificates, RDS's 2019 roots). None: every CA in the bundle.

    Parsing the 120 certificates of the whole bundle takes about 17 ms under CPython 3.13
    here, and the first request of every container that connects (after each SnapStart
    restore too) waits for it; one region's share takes about 2 ms, its selection included.
    """
    certificates = [
        match["pem"]
        for match in _LABELLED_CERTIFICATE.finditer(RDS_CA_BUNDLE.read_text(encoding="ascii"))
        if region is None or named_region(match["name"]) in (None, region)
    ]
    return "\n".join(certificates) + "\n"


def named_region(label: str) -> str | None:
    """The region a CA of the bundle is for, from its label; None: for no region."""
    found = _LABEL_REGION.match(label)
    return found["region"] if found else None


@functools.cache
def encrypted_unverified_context() -> ssl.SSLContext:
    # Built by hand: asyncpg's own "require" silently upgrades to verify-ca when
    # ~/.postgresql/root.crt exists, which is not what DB_SSL=require promises.
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# Where asyncpg reads TLS files from (paths only: never a key's content).
TLS_FILE_VARIABLES = ("PGSSLROOTCERT", "PGSSLCRL", "PGSSLCERT", "PGSSLKEY")
# The `ssl` modes of a DATABASE_URL that always encrypt (libpq's names, as asyncpg reads them).
_ENCRYPTING_URL_MODES = frozenset({"require", "verify-ca", "verify-full"})


def url_ssl_argument(mode: Any) -> ssl.SSLContext | None:
    """asyncpg's `ssl=` argument for a DATABASE_URL's `?ssl=<mode>`: the context asyncpg
    would build for that mode, built once; None leaves the mode to asyncpg.

    Handed the mode as a string, asyncpg builds its context again for every connection,
    and with NullPool that is every request. Under CPython 3.13 that costs about 0.3 ms
    for `require` and 0.6 ms for `verify-full` with one CA in PGSSLROOTCERT, and about
    20 ms with a bundle of CAs, which it reads again each time. So for the modes that
    always encrypt, asyncpg's own parser builds the context here, by its own rules
    (PGSSLROOTCERT or ~/.postgresql/root.crt, the CRL, a client certificate, the TLS
    versions), and the engine hands it to every connection.

    `prefer` and `allow`, and no mode at all (asyncpg's default is `prefer`), may fall back
    to plain text when the server has no TLS. Only a mode string tells asyncpg that it
    may, so those stay per connection; as does anything asyncpg would refuse, which it
    then refuses at connect as before.
    """
    if not isinstance(mode, str) or mode.replace("_", "-") not in _ENCRYPTING_URL_MODES:
        return None
    try:
        # A private function, asyncpg's parser of connect() arguments: the one place its
        # TLS rules live. The locked asyncpg fixes its signature; tests/core/
        # test_db_credentials.py fails if it changes.
        # Nothing is resolved, dialled or looked up (a password given: no ~/.pgpass read);
        # only the TLS part of what it returns is used.
        _, params = connect_utils._parse_connect_dsn_and_args(
            dsn=None,
            host="localhost",
            port=5432,
            user="postgres",
            password="",
            passfile=None,
            ssl=mode,
            direct_tls=None,
            database="postgres",
            server_settings=None,
            target_session_attrs=None,
            krbsrvname=None,
            gsslib=None,
            service=None,
            servicefile=None,
        )
    except (ClientConfigurationError, OSError, ssl.SSLError) as error:
        # No root certificate for verify-full, a file named in PGSSLROOTCERT that isn't
        # there or isn't PEM: a configuration error, not a database that is unavailable.
        files = [f"{name}={os.environ[name]}" for name in TLS_FILE_VARIABLES if name in os.environ]
        raise DatabaseNotConfigured(
            f"DATABASE_URL with ssl={mode}: {error} (TLS files: "
            f"{', '.join(files) or 'none set in ' + ', '.join(TLS_FILE_VARIABLES)};"
            " else ~/.postgresql/)"
        ) from None
    context: ssl.SSLContext = params.ssl
    return context
