"""SnapStart: containers restored from one snapshot share nothing that must be unique.

Prod runs the API with SnapStart: init runs once, its memory is snapshotted, and
every new container starts from that memory. Whatever init made that must differ
between containers (`random`'s state, a counter, a token) would otherwise be the same
in all of them. Behind RDS Proxy two containers share server connections, so a
prepared-statement name in both would be "prepared statement already exists" under
load: the app prepares its statements unnamed (lambda_app.db.engine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures.snapstart import run_after_restore_hooks
from tests.reliability.statement_log import StatementLoggedPostgres, statements

ROOT = Path(__file__).resolve().parents[2]
APPLICATION_NAME = "lambda_app.snapstart_test"


def _app_environment(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DB_APPLICATION_NAME": APPLICATION_NAME,
        "ENVIRONMENT": "local",
        "LOG_LEVEL": "WARNING",
    }


def test_two_restored_containers_serve_requests_and_name_no_prepared_statement(
    statement_logged_postgres: StatementLoggedPostgres, logged_api_database: str
) -> None:
    # given: one init, two containers restored from it, both PID 1 of their own namespace
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.reliability.snapstart_driver",
            str(statement_logged_postgres.server.log_file),
            "snapstart_user",
        ],
        cwd=ROOT,
        env=_app_environment(logged_api_database),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    first, second = json.loads(result.stdout.strip().splitlines()[-1])

    # then: both served every request, seeing the same pid ...
    assert first["statuses"] == second["statuses"] == [201, 200, 200, 200, 200]
    assert first["pid"] == second["pid"] == 1

    # ... and the server saw each one's prepared statements, none of them named
    for report in (first, second):
        since, until = report["log_span"]
        entries = statement_logged_postgres.entries(
            since=since, until=until, application_name=APPLICATION_NAME
        )
        prepared = [e.message for e in entries if e.message.startswith("execute ")]
        names = {s.name for s in statements(entries) if s.name is not None}
        assert len(prepared) >= 8 and not names, (len(prepared), sorted(names))


def test_after_restore_gives_each_container_its_own_random_state_without_a_fork() -> None:
    # A fork reseeds `random` on its own (an at-fork hook of the random module), which a
    # real restore does not: only our after-restore hook can tell two containers apart.
    import random

    import lambda_app.core.snapstart  # noqa: F401  # registers the hooks

    snapshot = random.getstate()
    draws = []
    for _container in range(2):
        random.setstate(snapshot)  # what every container restored from one snapshot has
        run_after_restore_hooks()
        draws.append(random.getrandbits(64))
    assert draws[0] != draws[1]


def test_after_restore_gives_each_container_its_own_multiprocessing_key() -> None:
    # boto3, imported before the snapshot on AWS, imports multiprocessing, which draws
    # its authentication key once, at import.
    import multiprocessing

    import lambda_app.core.snapstart  # noqa: F401  # registers the hooks

    process = multiprocessing.current_process()
    snapshot = process.authkey
    keys = []
    for _container in range(2):
        process.authkey = snapshot  # what every container restored from one snapshot has
        run_after_restore_hooks()
        keys.append(bytes(process.authkey))
    process.authkey = snapshot
    assert keys[0] != keys[1] and snapshot not in keys
