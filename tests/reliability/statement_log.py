"""A PostgreSQL of the test's own that logs every statement and connection, and a reader for it.

What RDS Proxy does with a session (multiplex it, or pin it) depends on the exact
statements a client sends, and what a request costs there on how many connections
it opens. The server's own log is the ground truth for both: every statement
(`log_statement=all`, with prepared-statement names), every login
(`log_connections`), each line prefixed with the client's `application_name` and
backend pid, so one test's traffic can be told apart from everything else.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lambda_app.devtools.embedded_postgres import SUPERUSER, EmbeddedPostgres
from tests.fixtures.ports import free_port

# Parsed back by LINE below; no spaces, so it survives pg_ctl's shell quoting as is.
LOG_LINE_PREFIX = "@@%a@@%p@@"
LINE = re.compile(r"^@@(?P<app>[^@]*)@@(?P<pid>\d+)@@(?P<level>[A-Z]+):\s+(?P<message>.*)$")
SETTINGS = (
    "log_statement=all",
    "log_connections=on",
    "log_disconnections=on",
    f"log_line_prefix={LOG_LINE_PREFIX}",
    "log_min_messages=warning",
    "log_min_error_statement=panic",  # failed statements are already logged by log_statement
)


@dataclass(frozen=True)
class LogEntry:
    application_name: str
    pid: int
    level: str
    message: str  # a multi-line statement is joined back into one message


@dataclass
class StatementLoggedPostgres:
    server: EmbeddedPostgres

    def admin_url(self) -> str:
        return self.server.url()

    def mark(self) -> int:
        """A position in the log: `entries(since=mark)` reads what was logged after it."""
        return self.server.log_file.stat().st_size if self.server.log_file.exists() else 0

    def entries(
        self, *, since: int = 0, until: int | None = None, application_name: str | None = None
    ) -> list[LogEntry]:
        """What was logged between two marks (to the end without `until`)."""
        with open(self.server.log_file, "rb") as handle:
            handle.seek(since)
            data = handle.read() if until is None else handle.read(until - since)
        text = data.decode(errors="replace")
        found: list[LogEntry] = []
        for line in text.splitlines():
            match = LINE.match(line)
            if match is None:
                if found and not line.startswith("@@"):  # a statement's continuation line
                    last = found[-1]
                    found[-1] = LogEntry(
                        last.application_name, last.pid, last.level, f"{last.message}\n{line}"
                    )
                continue
            found.append(
                LogEntry(
                    application_name=match["app"],
                    pid=int(match["pid"]),
                    level=match["level"],
                    message=match["message"],
                )
            )
        if application_name is None:
            return found
        return [entry for entry in found if entry.application_name == application_name]

    def connections_received(self, *, since: int) -> list[LogEntry]:
        """Every connection the server accepted, from any client, logged in or not: a
        connection dropped during its startup still cost the server a process (the proxy,
        a TLS handshake). The server is the test session's own, so only tests connect."""
        return [
            e for e in self.entries(since=since) if e.message.startswith("connection received:")
        ]

    async def connections_before_a_marker(self, *, since: int) -> list[LogEntry]:
        """The connections accepted since `since`, read once a marker connection made now
        shows in the log: the server accepts in order, so anything a client started
        before the marker (even one it dropped half-made) is logged before it."""
        import asyncpg

        from tests.fixtures.polling import wait_until

        marker = f"marker_{time.monotonic_ns()}"
        server = self.server
        conn = await asyncpg.connect(
            host=server.host,
            port=server.port,
            user=SUPERUSER,
            database="postgres",
            server_settings={"application_name": marker},
        )
        await conn.close()

        def marked() -> bool:
            return any(
                f"application_name={marker}" in entry.message for entry in self.entries(since=since)
            )

        await wait_until(marked, lambda: f"the marker connection {marker} was never logged")
        received = self.connections_received(since=since)
        return received[:-1]  # the marker's own

    def logins(self, *, since: int, application_name: str) -> list[LogEntry]:
        """Completed logins of this client: `connection authorized` names its application_name
        (PostgreSQL logs it before the prefix's %a is known, so match the message)."""
        return [
            entry
            for entry in self.entries(since=since)
            if entry.message.startswith("connection authorized:")
            and f"application_name={application_name}" in entry.message
        ]


@dataclass(frozen=True)
class Statement:
    name: str | None  # the prepared statement's name; None for a simple-protocol query
    text: str


# `log_statement=all` logs simple queries as `statement: ...` and the extended
# protocol's steps as `execute <name>: ...` (parse and bind are not logged).
STATEMENT = re.compile(r"^(?:statement|execute (?P<name>[^:]+)):\s(?P<text>.*)$", re.DOTALL)


def statements(entries: list[LogEntry]) -> list[Statement]:
    found = []
    for entry in entries:
        match = STATEMENT.match(entry.message)
        if match is not None:
            name = match["name"]
            found.append(
                Statement(name=None if name in (None, "<unnamed>") else name, text=match["text"])
            )
    return found


def start_statement_logged_postgres() -> Iterator[StatementLoggedPostgres]:
    data_root = Path(tempfile.mkdtemp(prefix="logged-pg-"))
    server = EmbeddedPostgres(data_root=data_root, port=free_port(), settings=SETTINGS)
    server.start()
    try:
        yield StatementLoggedPostgres(server)
    finally:
        server.stop()
        shutil.rmtree(data_root, ignore_errors=True)
