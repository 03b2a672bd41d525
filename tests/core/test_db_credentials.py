"""Database source (a), a full DATABASE_URL, and the TLS settings shared by every source."""

from __future__ import annotations

import ssl
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from lambda_app.core.settings import DbSslMode
from lambda_app.db.engine import build_engine
from lambda_app.db.plan import DatabaseNotConfigured
from lambda_app.db.sources import plan_connection
from lambda_app.db.tls import (
    _LABELLED_CERTIFICATE,
    RDS_CA_BUNDLE,
    encrypted_unverified_context,
    named_region,
    rds_verify_full_context,
    ssl_argument,
    trusted_region,
)
from tests.fixtures.fresh_interpreter import run_python
from tests.fixtures.settings import api_settings


def with_scheme(url: str, scheme: str) -> str:
    return scheme + url[url.index("://") :]


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+asyncpg"])
async def test_database_url_forms_all_connect(database_url_for_tests: str, scheme: str) -> None:
    # given the test database's URL written the way Heroku, libpq or SQLAlchemy write it
    url = with_scheme(database_url_for_tests, scheme)
    engine = build_engine(api_settings(database_url=url))
    try:
        # when
        async with engine.connect() as conn:
            name = await conn.scalar(text("SELECT current_database()"))
    finally:
        await engine.dispose()
    # then
    assert name == make_url(database_url_for_tests).database
    assert engine.url.drivername == "postgresql+asyncpg"


@pytest.mark.parametrize(
    "url", ["mysql://app:hunter2-secret@db/app", "sqlite:///app.db", "postgresql+psycopg://db/app"]
)
def test_other_url_schemes_are_refused_clearly(url: str) -> None:
    with pytest.raises(DatabaseNotConfigured, match="unsupported database URL scheme") as raised:
        plan_connection(api_settings(database_url=url))
    assert "hunter2" not in str(raised.value)


def test_unparseable_url_error_does_not_quote_it() -> None:
    with pytest.raises(DatabaseNotConfigured, match="not a valid database URL") as raised:
        plan_connection(api_settings(database_url="hunter2-secret no url at all"))
    assert "hunter2" not in str(raised.value)


def test_nothing_configured_names_every_option() -> None:
    with pytest.raises(DatabaseNotConfigured) as raised:
        build_engine(api_settings())
    message = str(raised.value)
    for variable in ("DATABASE_URL", "DB_HOST", "DB_IAM_AUTH=true", "DB_SECRET_ARN"):
        assert variable in message


def test_url_plan_follows_db_ssl_only_when_set(
    database_url_for_tests: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    url = database_url_for_tests
    assert plan_connection(api_settings(database_url=url)).connect_args == {}
    assert plan_connection(api_settings(database_url=url, db_ssl="disable")).connect_args == {
        "ssl": False
    }
    required = plan_connection(api_settings(database_url=url, db_ssl="require")).connect_args["ssl"]
    assert required is encrypted_unverified_context()
    assert required.verify_mode is ssl.CERT_NONE and not required.check_hostname
    verified = plan_connection(api_settings(database_url=url, db_ssl="verify-full")).connect_args
    assert verified["ssl"] is rds_verify_full_context("eu-west-1")


def _url_tls(mode: str) -> ssl.SSLContext:
    plan = plan_connection(api_settings(database_url=f"postgresql://u@db.example.com/d?ssl={mode}"))
    context = plan.connect_args["ssl"]
    assert isinstance(context, ssl.SSLContext)
    return context


@pytest.mark.usefixtures("user_tls_home")
@pytest.mark.parametrize("query", ["", "?ssl=prefer", "?ssl=allow", "?ssl=disable"])
def test_url_modes_that_may_go_plaintext_are_left_to_asyncpg(query: str) -> None:
    # Only a mode string lets asyncpg fall back to plain text (prefer, allow), or skip TLS.
    url = f"postgresql://u@db.example.com/d{query}"
    assert plan_connection(api_settings(database_url=url)).connect_args == {}


@pytest.mark.usefixtures("user_tls_home")
def test_url_require_encrypts_without_verifying() -> None:
    context = _url_tls("require")
    assert context.verify_mode is ssl.CERT_NONE and not context.check_hostname
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2  # asyncpg's floor


def test_url_require_verifies_with_a_root_certificate_in_the_home_folder(
    user_tls_home: Path,
) -> None:
    # libpq's rule, which asyncpg follows: require with ~/.postgresql/root.crt checks the CA.
    (user_tls_home / ".postgresql").mkdir()
    (user_tls_home / ".postgresql" / "root.crt").write_bytes(RDS_CA_BUNDLE.read_bytes())
    context = _url_tls("require")
    assert context.verify_mode is ssl.CERT_REQUIRED and not context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 100


@pytest.mark.parametrize("mode", ["verify-full", "verify_full"])
def test_url_verify_full_checks_chain_and_host_name(
    mode: str, user_tls_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGSSLROOTCERT", str(RDS_CA_BUNDLE))
    context = _url_tls(mode)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 100
    # Made for this plan, not shared by the process: a setting changed later counts.
    assert _url_tls(mode) is not context


@pytest.mark.usefixtures("user_tls_home")
@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_url_verification_without_a_root_certificate_is_a_configuration_error(mode: str) -> None:
    url = f"postgresql://u:hunter2-secret@db.example.com/d?ssl={mode}"
    with pytest.raises(DatabaseNotConfigured, match=rf"ssl={mode}.*root certificate") as raised:
        plan_connection(api_settings(database_url=url))
    assert "hunter2" not in str(raised.value)


async def test_db_ssl_disable_connects_in_plain_text(database_url_for_tests: str) -> None:
    engine = build_engine(
        api_settings(database_url=database_url_for_tests, db_ssl=DbSslMode.DISABLE)
    )
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()


def _common_names(context: ssl.SSLContext) -> list[str]:
    return sorted(
        dict(entry[0] for entry in ca["subject"])["commonName"]  # type: ignore[index]
        for ca in context.get_ca_certs()
    )


def test_verify_full_trusts_its_regions_rds_cas_and_the_proxy_roots_only() -> None:
    context = rds_verify_full_context("eu-west-1")
    assert context.check_hostname is True
    assert context.verify_mode is ssl.CERT_REQUIRED
    names = _common_names(context)
    # The region's CAs of each generation, the roots named for no region, no system store.
    assert [name for name in names if "eu-west-1" in name] == [
        "Amazon RDS eu-west-1 2019 CA",
        "Amazon RDS eu-west-1 Root CA ECC384 G1",
        "Amazon RDS eu-west-1 Root CA RSA2048 G1",
        "Amazon RDS eu-west-1 Root CA RSA4096 G1",
    ]
    assert {"Amazon Root CA 1", "Amazon Root CA 4", "Amazon RDS Root 2019 CA"} <= set(names)
    assert "Starfield Services Root Certificate Authority - G2" in names  # RDS Proxy's too
    assert not [name for name in names if "us-east-1" in name or "eu-west-2" in name]
    assert len(names) == 12
    assert rds_verify_full_context("eu-west-1") is context  # built once per process


def test_verify_full_follows_the_functions_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    names = _common_names(ssl_argument(DbSslMode.VERIFY_FULL))  # type: ignore[arg-type]
    assert "Amazon RDS ap-southeast-2 Root CA RSA2048 G1" in names
    assert not [name for name in names if "eu-west-1" in name]


def test_verify_full_without_a_region_trusts_the_whole_bundle() -> None:
    names = _common_names(rds_verify_full_context(None))
    # 115 RDS CAs of every region and the 5 Amazon Trust roots that sign RDS Proxy's.
    assert len(names) == 120
    assert all(name.startswith(("Amazon", "Starfield")) for name in names)


@pytest.mark.parametrize(
    ("label", "region"),
    [
        ("Amazon RDS eu-west-1 Root CA RSA2048 G1", "eu-west-1"),
        ("Amazon RDS Beta us-east-1 2019 CA", "us-east-1"),
        ("Amazon RDS us-gov-west-1 Root CA ECC384 G1", "us-gov-west-1"),
        ("Amazon RDS eusc-de-east-1 Root CA RSA2048 G1", "eusc-de-east-1"),
        ("Amazon RDS Root 2019 CA", None),
        ("Amazon Root CA 1", None),
        ("Starfield Services Root Certificate Authority - G2", None),
    ],
)
def test_a_cas_region_is_read_from_its_label(label: str, region: str | None) -> None:
    assert named_region(label) == region


def test_the_bundles_cas_are_for_one_region_each_but_eight_for_none() -> None:
    # A label the parser misread after a refresh would move a CA to no region, or to
    # the wrong one: both show here.
    labels = [entry["name"] for entry in _LABELLED_CERTIFICATE.finditer(RDS_CA_BUNDLE.read_text())]
    assert sorted(label for label in labels if named_region(label) is None) == [
        "Amazon RDS Beta Root 2019 CA",
        "Amazon RDS Preview Root 2019 CA",
        "Amazon RDS Root 2019 CA",
        "Amazon Root CA 1",
        "Amazon Root CA 2",
        "Amazon Root CA 3",
        "Amazon Root CA 4",
        "Starfield Services Root Certificate Authority - G2",
    ]
    for label in labels:
        region = named_region(label)
        assert region is None or f" {region} " in f" {label} ", label


def test_the_trusted_region_is_the_endpoints_else_the_functions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    # A database in another region than the function: its endpoint's name says which.
    assert trusted_region("app.proxy-abc123.us-east-1.rds.amazonaws.com") == "us-east-1"
    assert trusted_region("app.c9akciq32.ap-southeast-2.rds.amazonaws.com") == "ap-southeast-2"
    assert trusted_region("db.internal.example.com") == "eu-west-1"  # a CNAME says nothing
    assert trusted_region(None) == "eu-west-1"  # the secret's host, known only later
    monkeypatch.delenv("AWS_REGION")
    assert trusted_region("db.internal.example.com") is None  # then every region's CAs


@pytest.mark.parametrize("query", ["sslmode=require", "ssl=verify-full&sslrootcert=/ca.pem"])
def test_libpq_tls_parameters_in_the_url_are_refused_clearly(query: str) -> None:
    # SQLAlchemy would pass them to asyncpg.connect(), and every connection would fail.
    url = f"postgresql://u:hunter2-secret@db.example.com/d?{query}"
    refusal = r"asyncpg takes no ssl.*PGSSLROOTCERT"
    with pytest.raises(DatabaseNotConfigured, match=refusal) as raised:
        plan_connection(api_settings(database_url=url))
    assert "hunter2" not in str(raised.value)


def test_every_certificate_in_the_bundle_is_labelled_with_its_own_name() -> None:
    # The regions are chosen by these labels: a wrong one would drop a CA unseen.
    text = RDS_CA_BUNDLE.read_text(encoding="ascii")
    labelled = list(_LABELLED_CERTIFICATE.finditer(text))
    assert len(labelled) == text.count("-----BEGIN CERTIFICATE-----") == 120
    for entry in labelled:
        [name] = _common_names(ssl.create_default_context(cadata=entry["pem"]))
        assert entry["name"] == name


async def test_verify_full_never_falls_back_to_plain_text(database_url_for_tests: str) -> None:
    # The embedded server has no TLS: verify-full must refuse it, not quietly go plaintext.
    engine = build_engine(
        api_settings(database_url=database_url_for_tests, db_ssl=DbSslMode.VERIFY_FULL)
    )
    try:
        with pytest.raises(ConnectionError, match="SSL"):
            async with engine.connect():
                pass
    finally:
        await engine.dispose()


def test_app_and_url_engine_never_import_boto3() -> None:
    # One fresh interpreter (imports are slow on a busy machine): the app's import,
    # then an engine on DATABASE_URL, must leave boto3 unloaded (lambda_app.core.aws makes
    # its clients, and so imports boto3, only when a source needs one).
    result = run_python(
        "import sys\n"
        "import lambda_app.main\n"
        "assert 'boto3' not in sys.modules, 'lambda_app.main imported boto3'\n"
        "from lambda_app.db.engine import build_engine\n"
        "from lambda_app.core.settings import ApiSettings\n"
        "build_engine(ApiSettings(_env_file=None, database_url='postgresql://u@h/d'))\n"
        "for name in ('boto3', 'botocore'):\n"
        "    assert name not in sys.modules, name + ' imported by the URL engine'\n"
    )
    assert result.returncode == 0, result.stderr


async def test_sqlalchemy_async_creator_alone_would_cache_statements(
    database_url_for_tests: str,
) -> None:
    """Why `engine_for_plan` passes the adapter arguments itself: SQLAlchemy's own
    `async_creator=` drops them (a canary for a SQLAlchemy upgrade that changes this)."""
    url = make_url(database_url_for_tests)

    async def creator() -> asyncpg.Connection:
        return await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, database=url.database
        )

    engine = create_async_engine(
        url,
        poolclass=NullPool,
        async_creator=creator,
        connect_args={"prepared_statement_cache_size": 0, "statement_cache_size": 0},
    )
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            assert raw.dbapi_connection._prepared_statement_cache is not None  # type: ignore[union-attr]
            name = await conn.scalar(text("SELECT name FROM pg_prepared_statements"))
    finally:
        await engine.dispose()
    assert name is not None and name.startswith("__asyncpg_stmt_")  # per-connection counter
