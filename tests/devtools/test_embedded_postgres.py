"""Who stops the embedded server: the last session out, unless `db start` started it; and
one data folder serves on one port.

On a server of this module's own, never the shared one on 54329 (other runs use it).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambda_app.devtools.embedded_postgres import EmbeddedPostgres
from tests.fixtures.ports import free_port

STOP_SECONDS = 60  # upper bound for a server to stop (never reached when things work)


@pytest.fixture(scope="module")
def own_data_root() -> Iterator[Path]:
    # Not under tmp_path: as root the server runs as another user, who must reach it.
    data_root = Path(tempfile.mkdtemp(prefix="kept-pg-"))
    try:
        yield data_root
    finally:
        shutil.rmtree(data_root, ignore_errors=True)


@pytest.fixture
def server(own_data_root: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(data_root=own_data_root, port=free_port())
    try:
        yield server
    finally:
        server.stop()


def test_a_server_started_by_db_start_stays_up_until_db_stop(server: EmbeddedPostgres) -> None:
    # given: `db start`
    server.start_kept()

    # when: sessions (`serve`, `migrate`, a test run) come and go
    for _ in range(2):
        with server.session():
            pass

    # then: it still runs, and `db stop` stops it
    assert server.is_running()
    server.stop()
    assert not server.is_running()


def test_a_server_a_session_started_stops_when_the_last_session_ends(
    server: EmbeddedPostgres,
) -> None:
    with server.session():
        assert server.is_running()

    assert not server.is_running()


def test_db_start_keeps_only_the_server_it_started(server: EmbeddedPostgres) -> None:
    # given: `db start`, then the server stopped some other way (a crash, a reboot)
    server.start_kept()
    kept_pid = int(server.kept_marker.read_text())
    os.kill(kept_pid, signal.SIGINT)  # PostgreSQL's fast shutdown
    deadline = time.monotonic() + STOP_SECONDS
    while server.is_running():
        assert time.monotonic() < deadline, "the server should have stopped"
        time.sleep(0.1)

    # when: a session starts a server of its own, and ends
    with server.session():
        assert server.is_running()

    # then: the sessions' count applies to it again
    assert not server.is_running()


def test_a_running_server_is_not_looked_for_on_another_port(server: EmbeddedPostgres) -> None:
    server.start_kept()
    elsewhere = EmbeddedPostgres(data_root=server.data_root, port=free_port())

    with pytest.raises(RuntimeError) as refused:
        elsewhere.start_kept()

    assert f"already runs on port {server.port}, not {elsewhere.port}" in str(refused.value)
    assert int(server.kept_marker.read_text()) == server._postmaster_pid()
    with server.session():  # on its own port, it is still found
        assert server.is_running()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_as_root_the_folders_above_the_data_are_made_traversable_not_listable() -> None:
    # given: a checkout in a folder only its owner may list or enter (as /root is)
    private = Path(tempfile.mkdtemp(prefix="private-home-"))  # mode 0700
    server = EmbeddedPostgres(data_root=private / "checkout" / ".local", port=free_port())
    try:
        # when: its first server starts, as the system user
        server.start()

        # then: the system user may pass through the folder, and nobody may list it
        assert server.is_running()
        assert private.stat().st_mode & 0o777 == 0o711

        # ... and again after the folder was made private once more (pytest does that to
        # /tmp/pytest-of-<user> whenever a session starts)
        private.chmod(0o700)
        server.stop()
        assert not server.is_running()
        server.start()
        assert server.is_running()
    finally:
        server.stop()
        shutil.rmtree(private, ignore_errors=True)
