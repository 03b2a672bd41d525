"""Load through a transaction-pooling proxy: 16 Lambda containers, one small server pool.

PgBouncer in `pool_mode=transaction` with 5 server connections stands in for RDS
Proxy. Each worker process is one Lambda container running the real handler.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import queue
import time
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from lambda_app.core.settings import get_settings
from lambda_app.devtools.embedded_postgres import PROJECT_ROOT
from tests.reliability.databases import asyncpg_dsn, insert_superuser
from tests.reliability.load_worker import REQUESTS_PER_CYCLE, WorkerPlan, WorkerReport, run_worker
from tests.reliability.pgbouncer import PgBouncer, PoolMonitor

WORKERS = 16
CYCLES_PER_WORKER = 12  # 16 x (1 + 12 x 11) = 2,128 requests
MIN_REQUESTS = 2_000
# The harness's bounds, not assertions: 16 cold starts on 2 busy cores can take minutes.
WORKER_START_TIMEOUT_SECONDS = 300
WORKER_TIME_BUDGET_SECONDS = 240
RESULTS_FOLDER = PROJECT_ROOT / ".local" / "reliability"
SUPERUSER, SUPERUSER_PASSWORD = "load_admin", "load-admin password 1"
PREPARED_STATEMENT_ERRORS = (
    "prepared statement",
    "DuplicatePreparedStatement",
    "InvalidSQLStatementName",
)


async def _stored_users(database_url: str) -> dict[str, dict[str, object]]:
    conn = await asyncpg.connect(**asyncpg_dsn(database_url))  # type: ignore[arg-type]
    try:
        rows = await conn.fetch(
            "SELECT id, username, slug, email, first_name, last_name FROM users"
        )
    finally:
        await conn.close()
    return {row["username"]: dict(row) for row in rows}


async def _delete_users(database_url: str) -> None:
    conn = await asyncpg.connect(**asyncpg_dsn(database_url))  # type: ignore[arg-type]
    try:
        await conn.execute("DELETE FROM users")
    finally:
        await conn.close()


def _run_workers(plans: list[WorkerPlan]) -> list[WorkerReport]:
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(len(plans))
    results: multiprocessing.Queue[WorkerReport] = spawn.Queue()
    processes = [
        spawn.Process(target=run_worker, args=(plan, barrier, results), daemon=True)
        for plan in plans
    ]
    for process in processes:
        process.start()
    reports: list[WorkerReport] = []
    deadline = time.monotonic() + WORKER_START_TIMEOUT_SECONDS + WORKER_TIME_BUDGET_SECONDS + 60
    try:
        for _ in processes:
            reports.append(results.get(timeout=max(1.0, deadline - time.monotonic())))
    except queue.Empty:
        pass  # reported below as missing workers
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join(timeout=10)
    return reports


@pytest.mark.slow
@pytest.mark.parametrize("db_pool", ["null", "single"])
def test_mixed_load_through_pgbouncer_holds(
    load_database: str, pgbouncer: PgBouncer, admin_url: str, worker_logs: Path, db_pool: str
) -> None:
    # given: a superuser, and 16 Lambda containers pointed at PgBouncer (each opening a
    # connection per request, or keeping one: DB_POOL)
    asyncio.run(_delete_users(load_database))  # the database is the module's: start empty
    asyncio.run(insert_superuser(load_database, SUPERUSER, SUPERUSER_PASSWORD))
    plans = [
        WorkerPlan(
            index=i,
            database_url=pgbouncer.url(),
            superuser=SUPERUSER,
            superuser_password=SUPERUSER_PASSWORD,
            cycles=CYCLES_PER_WORKER,
            time_budget_seconds=WORKER_TIME_BUDGET_SECONDS,
            start_timeout_seconds=WORKER_START_TIMEOUT_SECONDS,
            log_path=str(worker_logs / f"worker-{i:02d}.log"),
            db_pool=db_pool,
        )
        for i in range(WORKERS)
    ]

    # when: they all run their workload at once, while the pool is watched
    with PoolMonitor(pgbouncer, admin_dsn=asyncpg_dsn(admin_url)) as monitor:
        reports = _run_workers(plans)
    assert monitor.error is None, monitor.error

    # then: every container finished, in its own process
    assert len(reports) == WORKERS, f"only {len(reports)} of {WORKERS} workers reported"
    errors = [f"worker {r.index}: {r.error}" for r in reports if r.error]
    assert not errors, errors
    assert len({r.pid for r in reports}) == WORKERS
    total = sum(r.requests for r in reports)
    assert total >= MIN_REQUESTS, f"{total} requests: workers ran out of time budget"

    # then: no 5xx, no unexpected status at all
    statuses: Counter[str] = sum((r.statuses for r in reports), start=Counter())
    server_errors = {k: v for k, v in statuses.items() if k.split()[-1].startswith("5")}
    assert not server_errors, server_errors
    unexpected = [line for r in reports for line in r.unexpected]
    assert not unexpected, unexpected[:20]

    # then: no prepared-statement error anywhere (workers' logs, PgBouncer's log)
    logs = {p.name: p.read_text(errors="replace") for p in worker_logs.iterdir()}
    logs["pgbouncer.log"] = pgbouncer.log_text()
    for name, text in logs.items():
        for needle in PREPARED_STATEMENT_ERRORS:
            assert needle not in text, f"{needle!r} in {name}"
        assert '"level": "ERROR"' not in text, f"an error was logged in {name}"

    # then: no prepared statement stayed behind on any server connection, where it would
    # hold a backend's memory for as long as the proxy keeps the connection
    left = asyncio.run(pgbouncer.prepared_statements_by_server())
    assert len(left) == pgbouncer.pool_size and not any(left.values()), left

    # then: PgBouncer never opened more than its 5 server connections (both views agree)
    peak = monitor.peak
    assert peak.samples > 50
    assert 0 < peak.max_servers <= pgbouncer.pool_size, peak
    assert 0 < peak.max_backends <= pgbouncer.pool_size, (peak, peak.backends_at_peak)

    # then: every acknowledged write is in PostgreSQL, as acknowledged, and nothing else
    acknowledged = {name: user for r in reports for name, user in r.acknowledged.items()}
    stored = asyncio.run(_stored_users(load_database))
    assert len(stored) == len(acknowledged) + 1  # + the superuser
    for username, user in acknowledged.items():
        row = stored.get(username)
        assert row is not None, f"acknowledged user {username} is missing"
        assert {k: row[k] for k in user} == user, username
    patched = sum(1 for u in acknowledged.values() if u["first_name"].startswith("Fïrst"))
    assert patched == len(acknowledged)

    # report: requests per second over the concurrent window
    window = max(r.finished for r in reports) - min(r.started for r in reports)
    figures = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "db_pool": db_pool,
        "workers": WORKERS,
        "requests": total,
        "requests_by_operation": _by_operation(statuses),
        "seconds": round(window, 2),
        "requests_per_second": round(total / window, 1),
        "users_written_and_verified": len(acknowledged),
        "server_pool_size": pgbouncer.pool_size,
        "max_server_connections_pgbouncer": peak.max_servers,
        "max_server_connections_postgresql": peak.max_backends,
        "max_clients_waiting_for_a_server": peak.max_clients_waiting,
        "pool_samples": peak.samples,
        "status_5xx": 0,
        "prepared_statement_errors": 0,
        "password_hash": {
            "memory_kib": get_settings().password_hash_memory_kib,
            "time_cost": get_settings().password_hash_time_cost,
        },
        "database": make_url(load_database).drivername,
        # The figures depend on what else the machine was doing: say so beside them.
        "cpu_count": os.cpu_count(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 1),
    }
    suffix = "" if db_pool == "null" else f"_{db_pool}"
    results_file = RESULTS_FOLDER / f"load_through_pgbouncer{suffix}.json"
    results_file.parent.mkdir(parents=True, exist_ok=True)
    results_file.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nload through PgBouncer: {json.dumps(figures)}")


def _by_operation(statuses: dict[str, int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key, value in statuses.items():
        operation = key.split()[0]
        counts[operation] = counts.get(operation, 0) + value
    return counts


assert REQUESTS_PER_CYCLE * CYCLES_PER_WORKER * WORKERS >= MIN_REQUESTS
