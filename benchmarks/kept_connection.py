"""A with NullPool against A keeping one connection (DB_POOL=single), through a TLS proxy.

On AWS every NullPool request pays a TLS handshake and a login at RDS Proxy. Against the
embedded PostgreSQL without TLS that cost would not show, so both run here through
PgBouncer with client TLS in front of it (the reliability tests' RDS Proxy stand-in,
tests/reliability/pgbouncer.py): connecting costs a handshake there as it does at the
proxy. Both processes run side by side, taking turns, as the main warm measurement does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.bundles import API_FOLDER
from benchmarks.processes import HANDLERS, Handler, run_warm_interleaved
from tests.reliability.pgbouncer import PgBouncer

POOLS = ("null", "single")


def _handler(pool: str) -> Handler:
    api = HANDLERS[0]
    return Handler(f"A {pool}", f"{api.label}, DB_POOL={pool}", api.spec, API_FOLDER)


def measure_kept_connection(
    *,
    python: str,
    bundle: Path,
    database_url: str,
    environment: dict[str, str],
    event: dict[str, Any],
    invocations: int,
    rounds: int,
) -> dict[str, Any]:
    """{"null": warm figures, "single": warm figures, "null/single": p50 ratio, ...}."""
    bouncer = PgBouncer.in_front_of(database_url, client_tls=True, pool_size=2)
    bouncer.start()
    try:
        runs = [
            (
                _handler(pool),
                bundle,
                environment | {"DATABASE_URL": bouncer.url(), "DB_SSL": "require", "DB_POOL": pool},
            )
            for pool in POOLS
        ]
        by_pool: dict[str, list[dict[str, Any]]] = {pool: [] for pool in POOLS}
        for _ in range(rounds):
            warm = run_warm_interleaved(runs, python=python, event=event, invocations=invocations)
            for pool in POOLS:
                sample = warm[f"A {pool}"]
                if sample["first_status"] != 200 or sample["warm_failures"]:
                    raise RuntimeError(f"A with DB_POOL={pool} failed through PgBouncer")
                by_pool[pool].append(report.summarize_warm(sample))
    finally:
        bouncer.cleanup()
    figures: dict[str, Any] = {pool: report.median_round(r) for pool, r in by_pool.items()}
    figures["proxy"] = "PgBouncer (transaction pooling) with client TLS, sslmode=require"
    figures["null/single p50"] = round(figures["null"]["p50_ms"] / figures["single"]["p50_ms"], 2)
    figures["null/single p99"] = round(figures["null"]["p99_ms"] / figures["single"]["p99_ms"], 2)
    return figures
