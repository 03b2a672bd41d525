"""Database sources (b) RDS IAM auth and (c) Secrets Manager, with moto for AWS and a
PostgreSQL server of our own that really checks passwords (SCRAM)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import logging
import re
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto import mock_aws
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from lambda_app.core.aws import SecretFormatError, fetch_secret_string, secret_fetcher
from lambda_app.core.settings import ApiSettings
from lambda_app.db.engine import build_engine, engine_for_plan
from lambda_app.db.iam import IamAuthTokens, IamConnector
from lambda_app.db.plan import DatabaseNotConfigured
from lambda_app.db.secret import CachedDbSecret, DbSecret, SecretConnector
from lambda_app.db.sources import plan_aws_connection
from lambda_app.db.tls import rds_verify_full_context
from lambda_app.devtools.embedded_postgres import EmbeddedPostgres
from tests.fixtures.aws import use_dummy_aws_credentials
from tests.fixtures.polling import wait_until
from tests.fixtures.ports import free_port
from tests.fixtures.settings import api_settings

REGION = "eu-west-1"
RDS_HOST = "app-db.cluster-abc123.eu-west-1.rds.amazonaws.com"


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- AWS (moto) ---------------------------------------------------------------------------


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's AWS, dummy credentials, and a fresh default boto3 session."""
    use_dummy_aws_credentials(monkeypatch, REGION)
    with mock_aws():
        boto3.setup_default_session()
        yield boto3.client("secretsmanager")
    boto3.DEFAULT_SESSION = None


def count_secret_fetches() -> list[str]:
    """SecretIds of every GetSecretValue call made by clients created after this call."""
    calls: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(params["SecretId"])

    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register(
        "provide-client-params.secrets-manager.GetSecretValue", record
    )
    return calls


def create_db_secret(client: Any, **fields: Any) -> str:
    """A secret shaped like the ones RDS and CDK generate."""
    value = {"engine": "postgres", "dbInstanceIdentifier": "app-db"} | fields
    name = f"app-db-secret-{time.monotonic_ns()}"
    return str(client.create_secret(Name=name, SecretString=json.dumps(value))["ARN"])


# --- IAM auth tokens ------------------------------------------------------------------------


def test_iam_token_is_reused_for_ten_minutes_then_signed_again() -> None:
    clock = FakeClock()
    signed: list[str] = []

    def sign() -> str:
        signed.append(f"token-{len(signed) + 1}")
        return signed[-1]

    tokens = IamAuthTokens(sign, clock=clock)

    assert tokens.current() == "token-1"
    clock.now += 9 * 60 + 59  # 9 min 59 s: still reused
    assert tokens.current() == "token-1"
    clock.now += 1  # 10 minutes: signed again, 5 minutes before the old one expires
    assert tokens.current() == "token-2"
    clock.now += 60
    assert tokens.current() == "token-2"
    clock.now -= 3600  # the wall clock went back: the age is unknown, so sign again
    assert tokens.current() == "token-3"
    assert signed == ["token-1", "token-2", "token-3"]
    assert "token" not in repr(tokens)


async def test_iam_token_is_signed_in_a_worker_thread_and_handed_over_inline_while_fresh() -> None:
    clock = FakeClock()
    signed_on: list[int] = []

    def sign() -> str:
        signed_on.append(threading.get_ident())
        return f"token-{len(signed_on)}"

    tokens = IamAuthTokens(sign, clock=clock)
    loop_thread = threading.get_ident()

    assert tokens.would_sign()
    assert await tokens.current_for_request() == "token-1"
    assert not tokens.would_sign()
    assert await tokens.current_for_request() == "token-1"  # fresh: no signature, inline
    clock.now += 600
    assert tokens.would_sign()
    assert await tokens.current_for_request() == "token-2"
    assert len(signed_on) == 2 and loop_thread not in signed_on
    with tokens._lock:  # a signature under way in another thread counts as one
        assert tokens.would_sign()


@dataclass
class CredentialsEndpoint:
    """Lambda's credentials endpoint as a SnapStart function meets it
    (AWS_CONTAINER_CREDENTIALS_FULL_URI), answering each GET only once `go_ahead` is set."""

    url: str
    go_ahead: threading.Event
    authorizations: list[str | None]  # the Authorization header of each GET
    answered_after_go_ahead: list[bool]


@pytest.fixture
def credentials_endpoint() -> Iterator[CredentialsEndpoint]:
    go_ahead = threading.Event()
    authorizations: list[str | None] = []
    answered_after_go_ahead: list[bool] = []
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    body = json.dumps(
        {
            "AccessKeyId": "ASIASNAPSTARTEXAMPLE",
            "SecretAccessKey": "snapstart-secret-access-key",
            "Token": "snapstart-session-token",
            "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            authorizations.append(self.headers.get("Authorization"))
            # The bound only keeps a failing test from hanging: an inline signature
            # blocks the event loop, which then never sets go_ahead.
            answered_after_go_ahead.append(go_ahead.wait(timeout=10))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield CredentialsEndpoint(
            url=f"http://127.0.0.1:{server.server_address[1]}/2021-04-23/credentials",
            go_ahead=go_ahead,
            authorizations=authorizations,
            answered_after_go_ahead=answered_after_go_ahead,
        )
    finally:
        go_ahead.set()
        server.shutdown()
        server.server_close()
        thread.join()


async def test_iam_token_with_snapstart_credentials_is_signed_without_holding_the_event_loop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, credentials_endpoint: CredentialsEndpoint
) -> None:
    # given credentials as a SnapStart function gets them: no key in the environment,
    # an endpoint of Lambda's to fetch them from (and no file or instance to fall back on)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", REGION)  # Lambda sets both
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", credentials_endpoint.url)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "lambda-container-token")
    boto3.setup_default_session()
    try:
        plan = plan_aws_connection(iam_settings())
        connector = plan.async_creator
        assert isinstance(connector, IamConnector)

        # when a connection's token is signed, and the event loop goes on meanwhile
        signing = asyncio.ensure_future(connector.tokens.current_for_request())
        await asyncio.sleep(0)  # the signature starts (inline, it would block right here)
        credentials_endpoint.go_ahead.set()
        token = await signing
        again = await connector.tokens.current_for_request()
    finally:
        boto3.DEFAULT_SESSION = None

    # then the credentials came from the endpoint, which answered while the loop ran on
    assert credentials_endpoint.authorizations == ["lambda-container-token"]
    assert credentials_endpoint.answered_after_go_ahead == [True]
    assert "X-Amz-Credential=ASIASNAPSTARTEXAMPLE%2F" in token
    assert "X-Amz-Security-Token=snapstart-session-token" in token
    assert again is token  # and a fresh token asks the endpoint nothing


def iam_settings(**values: Any) -> ApiSettings:
    base: dict[str, Any] = {
        "db_iam_auth": True,
        "db_host": RDS_HOST,
        "db_name": "app",
        "db_user": "app_lambda",
    }
    return api_settings(**(base | values))


def test_iam_token_is_signed_locally_with_the_lambda_credentials(aws: Any) -> None:
    # given an IAM plan (the clock only decides reuse; the signature uses real time)
    clock = FakeClock()
    plan = plan_aws_connection(iam_settings(), clock=clock)
    connector = plan.async_creator
    assert isinstance(connector, IamConnector)

    # when
    token = connector.tokens.current()

    # then: an RDS connect presigned URL for this host, port and user, valid 15 minutes
    assert token.startswith(f"{RDS_HOST}:5432/?Action=connect&DBUser=app_lambda&")
    assert f"%2F{REGION}%2Frds-db%2Faws4_request" in token
    assert "X-Amz-Expires=900" in token
    assert re.search(r"X-Amz-Signature=[0-9a-f]{64}", token)
    assert connector.tokens.current() is token  # reused
    clock.now += 600
    # signed again (the text only differs once the signing second, X-Amz-Date, has moved)
    assert connector.tokens.current() is not token
    # and the token shows up in no repr
    assert token not in repr(plan) and "X-Amz" not in repr(plan)


def test_iam_plan_verifies_tls_against_the_rds_bundle_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    plan = plan_aws_connection(iam_settings())
    assert plan.connect_args["ssl"] is rds_verify_full_context("eu-west-1")
    assert plan.url.password is None and plan.url.host == RDS_HOST
    assert plan_aws_connection(iam_settings(db_ssl="disable")).connect_args["ssl"] is False
    # a proxy in another region than the function: the CAs of the endpoint's region
    elsewhere = plan_aws_connection(iam_settings(db_host="app.proxy-x.us-east-1.rds.amazonaws.com"))
    assert elsewhere.connect_args["ssl"] is rds_verify_full_context("us-east-1")


def test_iam_plan_names_missing_settings() -> None:
    with pytest.raises(DatabaseNotConfigured, match="DB_USER"):
        plan_aws_connection(iam_settings(db_user=None))
    with pytest.raises(DatabaseNotConfigured, match="not both"):
        plan_aws_connection(iam_settings(db_secret_arn="arn:aws:secretsmanager:x"))


# --- the secret format and cache ------------------------------------------------------------


def test_rds_generated_secret_is_parsed_and_its_password_hidden() -> None:
    raw = json.dumps(
        {
            "username": "app",
            "password": "s3cr3t-Password",
            "engine": "postgres",
            "host": "db.example.com",
            "port": 5432,
            "dbname": "app",
            "dbInstanceIdentifier": "app-db",
        }
    )
    secret = DbSecret.parse(raw)
    assert (secret.username, secret.password, secret.host, secret.port, secret.dbname) == (
        "app",
        "s3cr3t-Password",
        "db.example.com",
        5432,
        "app",
    )
    assert "s3cr3t" not in repr(secret)
    # an RDS-managed master secret holds only username and password
    managed = DbSecret.parse('{"username": "postgres", "password": "pw"}')
    assert (managed.host, managed.port, managed.dbname) == (None, None, None)


@pytest.mark.parametrize(
    "raw",
    [
        "s3cr3t-Password",
        '["s3cr3t-Password"]',
        '{"username": "app"}',
        '{"username": "app", "password": "s3cr3t-Password", "port": "five"}',
    ],
)
def test_malformed_secret_errors_never_quote_it(raw: str) -> None:
    with pytest.raises(SecretFormatError) as raised:
        DbSecret.parse(raw)
    assert "s3cr3t" not in str(raised.value)
    # nor chains an exception that would (a traceback prints the JSON error's document)
    error = raised.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_secret_is_cached_for_its_ttl(aws: Any) -> None:
    # given a secret in Secrets Manager and a cache with a 5-minute TTL
    arn = create_db_secret(aws, username="app", password="first")
    fetches = count_secret_fetches()
    clock = FakeClock()
    cache = CachedDbSecret(secret_fetcher(arn), ttl_seconds=300, clock=clock)
    assert cache.get().password == "first"

    # when it changes in Secrets Manager, the cached copy is used until the TTL is over
    aws.put_secret_value(
        SecretId=arn, SecretString=json.dumps({"username": "app", "password": "second"})
    )
    clock.now += 299
    assert cache.get().password == "first"
    clock.now += 1
    assert cache.get().password == "second"
    assert fetches == [arn, arn]


def test_cached_secret_outlives_a_secrets_manager_failure(aws: Any) -> None:
    # given a cached secret whose TTL is over
    arn = create_db_secret(aws, username="app", password="still-Valid")
    fetches = count_secret_fetches()
    clock = FakeClock()
    cache = CachedDbSecret(secret_fetcher(arn), ttl_seconds=300, clock=clock)
    assert cache.get().password == "still-Valid"
    clock.now += 300

    # when Secrets Manager fails (here: the secret is gone)
    aws.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)

    # then the cached secret is used, and the refresh retried only after a pause
    assert cache.get().password == "still-Valid"
    clock.now += 29
    assert cache.get().password == "still-Valid"
    assert len(fetches) == 2
    clock.now += 1
    assert cache.get().password == "still-Valid"
    assert len(fetches) == 3


def test_fetch_secret_string_reads_secrets_manager(aws: Any) -> None:
    arn = aws.create_secret(Name="jwt", SecretString="a-signing-key")["ARN"]
    assert fetch_secret_string(arn) == "a-signing-key"
    binary = aws.create_secret(Name="binary", SecretBinary=b"\x00\x01")["ARN"]
    with pytest.raises(SecretFormatError, match="no SecretString"):
        fetch_secret_string(binary)


def test_secret_plan_is_hermetic_and_verifies_tls_by_default(aws: Any) -> None:
    fetches = count_secret_fetches()
    plan = plan_aws_connection(api_settings(db_secret_arn="arn:aws:secretsmanager:eu-west-1:1:x"))
    assert isinstance(plan.async_creator, SecretConnector)
    assert plan.connect_args["ssl"] is rds_verify_full_context(None)  # the fixture: no AWS_REGION
    assert fetches == []  # nothing fetched until the first connection


# --- against a PostgreSQL server that checks passwords --------------------------------------


@dataclass(frozen=True)
class ScramServer:
    host: str
    port: int

    async def admin(self) -> asyncpg.Connection:
        # The superuser keeps trust auth (see the fixture): only for test set-up.
        return await asyncpg.connect(
            host=self.host, port=self.port, user="postgres", database="postgres"
        )

    async def set_role(self, role: str, password: str) -> None:
        conn = await self.admin()
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
            verb = "ALTER" if exists else "CREATE"
            literal = password.replace("'", "''")
            await conn.execute(f"{verb} ROLE \"{role}\" WITH LOGIN PASSWORD '{literal}'")
        finally:
            await conn.close()


async def _wait_for_password_auth(host: str, port: int) -> None:
    """pg_reload_conf() only signals the server: wait until a password is asked for."""

    async def asks_for_a_password() -> bool:
        try:
            conn = await asyncpg.connect(host=host, port=port, user="nobody", database="postgres")
            await conn.close()
        except asyncpg.InvalidPasswordError:
            return True
        except asyncpg.InvalidAuthorizationSpecificationError:
            pass  # still trust auth: "role does not exist"
        return False

    await wait_until(
        asks_for_a_password,
        lambda: "the server never switched to password authentication",
        within=30,  # a busy machine
    )


def _start_on_a_free_port(data_root: Path) -> EmbeddedPostgres:
    # Other test runs on this machine pick free ports too: retry if ours got taken.
    for attempt in range(3):
        server = EmbeddedPostgres(data_root=data_root, port=free_port())
        try:
            server.start()
            return server
        except RuntimeError:
            if attempt == 2 or not server.pgdata.joinpath("PG_VERSION").exists():
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def scram_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScramServer]:
    """An embedded PostgreSQL of this module's own, with SCRAM password auth over TCP
    (the shared test server trusts everyone, so it can't show a wrong password)."""
    server = _start_on_a_free_port(tmp_path_factory.mktemp("scram_pg"))
    try:
        hba = Path(server.pgdata) / "pg_hba.conf"
        hba.write_text(
            "local all all trust\n"
            "host all postgres 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )

        async def reload() -> None:
            conn = await asyncpg.connect(
                host=server.host, port=server.port, user="postgres", database="postgres"
            )
            try:
                await conn.execute("SELECT pg_reload_conf()")
            finally:
                await conn.close()
            await _wait_for_password_auth(server.host, server.port)

        asyncio.run(reload())
        yield ScramServer(host=server.host, port=server.port)
    finally:
        server.stop()


@pytest.fixture
async def engines() -> AsyncIterator[list[AsyncEngine]]:
    """Engines made by a test, disposed after it."""
    made: list[AsyncEngine] = []
    yield made
    for engine in made:
        await engine.dispose()


def secret_settings(arn: str, **values: Any) -> ApiSettings:
    # No TLS on the embedded server; TLS has its own tests.
    return api_settings(**({"db_secret_arn": arn, "db_ssl": "disable"} | values))


def root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None:
        error = error.__cause__
    return error


async def whoami(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT 1")) == 1
        return str(await conn.scalar(text("SELECT current_user")))


async def test_secret_credentials_connect_and_settings_override_the_host(
    aws: Any, scram_server: ScramServer, engines: list[AsyncEngine]
) -> None:
    # given a role with a password, and its secret pointing at the instance endpoint
    await scram_server.set_role("app_secret", "first-Password")
    arn = create_db_secret(
        aws,
        username="app_secret",
        password="first-Password",
        host="app-db.instance.invalid",  # the instance; we dial the "proxy" instead
        port=5432,
        dbname="postgres",
    )
    # when DB_HOST/DB_PORT name the endpoint to dial
    engine = build_engine(
        secret_settings(arn, db_host=scram_server.host, db_port=scram_server.port)
    )
    engines.append(engine)
    # then the secret's credentials are used there
    assert await whoami(engine) == "app_secret"


async def test_rotated_password_is_refetched_once_and_the_connection_retried(
    aws: Any,
    scram_server: ScramServer,
    engines: list[AsyncEngine],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # even at DEBUG, no password reaches a log
    # given an engine that connected with the secret, cached for 5 minutes
    await scram_server.set_role("app_rotated", "before-Rotation")
    arn = create_db_secret(
        aws,
        username="app_rotated",
        password="before-Rotation",
        host=scram_server.host,
        port=scram_server.port,
        dbname="postgres",
    )
    fetches = count_secret_fetches()
    engine = build_engine(secret_settings(arn, db_secret_ttl_seconds=300))
    engines.append(engine)
    assert await whoami(engine) == "app_rotated"
    assert len(fetches) == 1

    # when the password is rotated (database first, then the secret, as rotation does)
    await scram_server.set_role("app_rotated", "after-Rotation")
    new_value = json.loads(aws.get_secret_value(SecretId=arn)["SecretString"])
    new_value["password"] = "after-Rotation"
    aws.put_secret_value(SecretId=arn, SecretString=json.dumps(new_value))

    # then the next connection fails once with the stale password, re-fetches, succeeds
    assert await whoami(engine) == "app_rotated"
    assert len(fetches) == 2
    # and the fresh secret is cached again
    assert await whoami(engine) == "app_rotated"
    assert len(fetches) == 2
    assert "retrying with the re-fetched secret" in caplog.text
    assert "Rotation" not in caplog.text  # neither password


async def test_wrong_password_fails_cleanly_after_one_refetch(
    aws: Any, scram_server: ScramServer, engines: list[AsyncEngine]
) -> None:
    await scram_server.set_role("app_wrong", "the-Real-password")
    arn = create_db_secret(
        aws,
        username="app_wrong",
        password="not-The-password",
        host=scram_server.host,
        port=scram_server.port,
        dbname="postgres",
    )
    fetches = count_secret_fetches()
    engine = build_engine(secret_settings(arn))
    engines.append(engine)

    with pytest.raises(DBAPIError) as raised:
        await whoami(engine)

    assert len(fetches) == 2  # the cached secret, then one re-fetch: no loop
    assert isinstance(root_cause(raised.value), asyncpg.InvalidPasswordError)
    assert "not-The-password" not in str(raised.value)
    assert 'password authentication failed for user "app_wrong"' in str(raised.value)


async def test_iam_token_is_the_password_and_reused_across_connections(
    aws: Any, scram_server: ScramServer, engines: list[AsyncEngine]
) -> None:
    # given an IAM plan for a role whose password is the token (RDS checks the
    # signature instead; a SCRAM server can at least check it is what we send)
    clock = FakeClock()
    iam = iam_settings(
        db_host=scram_server.host,
        db_port=scram_server.port,
        db_name="postgres",
        db_user="app_iam",
        db_ssl="disable",
    )
    plan = plan_aws_connection(iam, clock=clock)
    assert isinstance(plan.async_creator, IamConnector)
    token = plan.async_creator.tokens.current()
    signed_by = int(time.time())  # no earlier than the token's X-Amz-Date second
    await scram_server.set_role("app_iam", token)
    engine = engine_for_plan(plan, iam)
    engines.append(engine)

    # when / then: NullPool opens a new connection each time, all with the same token
    for _ in range(3):
        assert await whoami(engine) == "app_iam"
    # and after 10 minutes a new token is signed, which this server does not know
    # (a token's text changes with its signing second, X-Amz-Date: let one pass)
    await wait_until(lambda: int(time.time()) > signed_by, lambda: "the clock stood still")
    clock.now += 600
    with pytest.raises(DBAPIError) as raised:
        await whoami(engine)
    assert isinstance(root_cause(raised.value), asyncpg.InvalidPasswordError)


async def test_creator_path_keeps_the_proxy_safe_connection_settings(
    aws: Any, scram_server: ScramServer, engines: list[AsyncEngine]
) -> None:
    # given an engine on the async-creator path
    await scram_server.set_role("app_proxy", "proxy-Safe-password")
    arn = create_db_secret(
        aws,
        username="app_proxy",
        password="proxy-Safe-password",
        host=scram_server.host,
        port=scram_server.port,
        dbname="postgres",
    )
    engine = build_engine(secret_settings(arn))
    engines.append(engine)

    async with engine.connect() as conn:
        # then neither SQLAlchemy's adapter nor asyncpg caches prepared statements
        raw = await conn.get_raw_connection()
        adapter: Any = raw.dbapi_connection
        assert adapter._prepared_statement_cache is None
        assert adapter._connection._stmt_cache.get_max_size() == 0
        assert adapter._connection._config.command_timeout == 10.0
        # and no statement is prepared under a name (safe behind transaction pooling:
        # a named one would outlive the request on a server connection of the proxy)
        names = [
            await conn.scalar(text("SELECT string_agg(name, ',') FROM pg_prepared_statements"))
            for _ in range(3)
        ]
        application_name = await conn.scalar(text("SELECT current_setting('application_name')"))
    assert names == [None, None, None]
    assert application_name == "lambda_app"


# --- TLS, through a TLS-terminating relay in front of the embedded server -------------------
# The embedded PostgreSQL is built without OpenSSL, so a small relay speaks PostgreSQL's
# SSLRequest and TLS to the client and relays the plain protocol to the server.

SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def _test_ca_signed_server_context() -> ssl.SSLContext:
    """A server certificate for 127.0.0.1 from a throwaway CA (not an RDS CA)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA (not RDS)")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # The key only has to exist while load_cert_chain reads it; leave nothing in /tmp.
    with tempfile.TemporaryDirectory(prefix="tls_relay_") as folder:
        pem_dir = Path(folder)
        (pem_dir / "server.pem").write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + ca_cert.public_bytes(serialization.Encoding.PEM)
        )
        (pem_dir / "server.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context.load_cert_chain(pem_dir / "server.pem", pem_dir / "server.key")
    return context


@dataclass
class TlsRelay:
    port: int
    handshakes: int = 0
    refused_handshakes: int = 0


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def tls_relay(scram_server: ScramServer) -> AsyncIterator[TlsRelay]:
    context = _test_ca_signed_server_context()
    relay = TlsRelay(port=0)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if await reader.readexactly(8) != SSL_REQUEST:
            writer.close()
            return
        writer.write(b"S")
        await writer.drain()
        try:
            await writer.start_tls(context)
        except (ssl.SSLError, ConnectionError):
            relay.refused_handshakes += 1  # the client did not trust our certificate
            writer.close()
            return
        relay.handshakes += 1
        backend_reader, backend_writer = await asyncio.open_connection(
            scram_server.host, scram_server.port
        )
        await asyncio.gather(_pipe(reader, backend_writer), _pipe(backend_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    relay.port = server.sockets[0].getsockname()[1]
    async with server:
        yield relay


async def tls_secret_engine(
    aws: Any, scram_server: ScramServer, relay: TlsRelay, db_ssl: str | None
) -> AsyncEngine:
    await scram_server.set_role("app_tls", "tls-Password")
    arn = create_db_secret(
        aws, username="app_tls", password="tls-Password", host="127.0.0.1", dbname="postgres"
    )
    values: dict[str, Any] = {"db_secret_arn": arn, "db_port": relay.port}
    if db_ssl is not None:
        values["db_ssl"] = db_ssl
    return build_engine(api_settings(**values))


async def test_db_ssl_require_encrypts_without_verifying(
    aws: Any, scram_server: ScramServer, tls_relay: TlsRelay, engines: list[AsyncEngine]
) -> None:
    engine = await tls_secret_engine(aws, scram_server, tls_relay, "require")
    engines.append(engine)

    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT current_user")) == "app_tls"
        raw = await conn.get_raw_connection()
        transport = raw.driver_connection._transport  # type: ignore[union-attr]
        assert transport.get_extra_info("ssl_object") is not None

    assert tls_relay.handshakes == 1


async def test_verify_full_is_the_default_and_rejects_a_non_rds_certificate(
    aws: Any, scram_server: ScramServer, tls_relay: TlsRelay, engines: list[AsyncEngine]
) -> None:
    # given a server whose certificate is valid for its address but not from an RDS CA
    engine = await tls_secret_engine(aws, scram_server, tls_relay, db_ssl=None)
    engines.append(engine)

    # when / then: the bundled RDS CAs are the only ones trusted
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        async with engine.connect():
            pass
    await wait_until(  # the relay learns of the refusal from the client's alert
        lambda: tls_relay.refused_handshakes > 0, lambda: "the relay saw no refused handshake"
    )
    assert (tls_relay.handshakes, tls_relay.refused_handshakes) == (0, 1)
