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

from benchmarks.bundles import API_FOLDER
from benchmarks.processes import HANDLERS, Handler, measure_warm_rounds
from tests.reliability.pgbouncer import PgBouncer

POOLS = ("null", "single")


def _handler(pool: str) -> Handler:
    api = HANDLERS[0]
    return Handler(f"A {pool}", f"{api.label}, DB_POOL={pool}", api.spec, API_FOLDER)


def _no_failures(handler: Handler, result: dict[str, Any]) -> None:
    # (A first answer other than a 200 has raised already, in processes._read_result.)
    if result["warm_failures"]:
        raise RuntimeError(f"{handler.label} failed through PgBouncer")


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
    with PgBouncer.running(database_url, client_tls=True, pool_size=2) as bouncer:
        runs = [
            (
                _handler(pool),
                bundle,
                environment | {"DATABASE_URL": bouncer.url(), "DB_SSL": "require", "DB_POOL": pool},
            )
            for pool in POOLS
        ]
        by_handler = measure_warm_rounds(
            runs,
            python=python,
            event=event,
            invocations=invocations,
            rounds=rounds,
            check=_no_failures,
        )
    figures: dict[str, Any] = {pool: by_handler[f"A {pool}"] for pool in POOLS}
    figures["proxy"] = "PgBouncer (transaction pooling) with client TLS, sslmode=require"
    figures["null/single p50"] = round(figures["null"]["p50_ms"] / figures["single"]["p50_ms"], 2)
    figures["null/single p99"] = round(figures["null"]["p99_ms"] / figures["single"]["p99_ms"], 2)
    return figures
