"""SnapStart: containers restored from one snapshot share nothing that must be unique.

Prod runs the API with SnapStart: init runs once, its memory is snapshotted, and
every new container starts from that memory. Whatever init made that must differ
between containers (the prepared-statement-name token, counters, `random`'s state)
would otherwise be the same in all of them; behind RDS Proxy two containers share
server connections, so a shared statement name is "prepared statement already
exists" under load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_two_restored_containers_use_no_statement_name_in_common(
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

    # ... and the server saw disjoint sets of statement names
    def names_of(report: dict[str, list[int]]) -> set[str]:
        since, until = report["log_span"]
        entries = statement_logged_postgres.entries(
            since=since, until=until, application_name=APPLICATION_NAME
        )
        return {s.name for s in statements(entries) if s.name is not None}

    first_names, second_names = names_of(first), names_of(second)
    assert len(first_names) >= 8 and len(second_names) >= 8  # each request's statements
    assert first_names.isdisjoint(second_names), sorted(first_names & second_names)


def test_after_restore_makes_a_new_statement_token_without_a_fork() -> None:
    # The restore hook alone (no fork involved, as in a real restore) renews the token.
    import snapshot_restore_py

    from lambda_app.db import statement_names

    before = statement_names.unique_statement_name()
    for func, args, kwargs in snapshot_restore_py.get_after_restore():
        func(*args, **kwargs)
    after = statement_names.unique_statement_name()
    assert before.split("_")[3] != after.split("_")[3]
    assert after.endswith("_0__")  # the counter starts again too


def test_after_restore_gives_each_container_its_own_random_state_without_a_fork() -> None:
    # A fork reseeds `random` on its own (an at-fork hook of the random module), which a
    # real restore does not: only our after-restore hook can tell two containers apart.
    import random

    import snapshot_restore_py

    import lambda_app.core.snapstart  # noqa: F401  # registers the hooks

    snapshot = random.getstate()
    draws = []
    for _container in range(2):
        random.setstate(snapshot)  # what every container restored from one snapshot has
        for func, args, kwargs in snapshot_restore_py.get_after_restore():
            func(*args, **kwargs)
        draws.append(random.getrandbits(64))
    assert draws[0] != draws[1]
