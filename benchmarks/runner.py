"""`python -m benchmarks`: measure A, B and C in one run, print a table, write JSON.

One run, one PostgreSQL, one seeded user, the same API Gateway 2.0 event for the
three handlers. Cold starts are interleaved (A, B, C, A, B, C, ...) so a busy
moment on the machine hits all three alike and the ratios stay fair.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.bundle_size import lambda_bundle_size
from benchmarks.bundles import NO_BYTECODE, PRECOMPILED, build_local_bundles, bytecode_files
from benchmarks.database import BENCH_DATABASE, BENCH_JWT_SECRET, BenchDatabase, bench_database
from benchmarks.importtime import profile_imports, top_by_cumulative, top_by_self
from benchmarks.processes import (
    HANDLERS,
    WARM_BATCH,
    Handler,
    api_gateway_v2_event,
    child_environment,
    run_handler_process,
    run_warm_interleaved,
)

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "latest.json"
# The method's minimums: fewer (smoke mode) still runs, but is flagged as not a full run.
MIN_COLD_RUNS = 10
MIN_WARM_INVOCATIONS = 2000


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _check_answer(handler: Handler, result: dict[str, Any], db: BenchDatabase) -> None:
    """Each handler must answer with the seeded user: a fast wrong answer counts for nothing."""
    body = json.loads(result["first_body"])
    if body.get("id") != db.user_id or body.get("username") != db.username:
        raise RuntimeError(f"handler {handler.key} answered the wrong body: {body}")
    if result.get("warm_failures"):
        raise RuntimeError(f"handler {handler.key} failed {result['warm_failures']} warm calls")


def measure_cold_starts(
    run: Callable[[Handler, str], dict[str, Any]], db: BenchDatabase, runs: int
) -> dict[str, dict[str, Any]]:
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {
        variant: {h.key: [] for h in HANDLERS} for variant in (NO_BYTECODE, PRECOMPILED)
    }
    for number in range(1, runs + 1):
        for variant in (NO_BYTECODE, PRECOMPILED):
            for handler in HANDLERS:
                result = run(handler, variant)
                _check_answer(handler, result, db)
                samples[variant][handler.key].append(result)
        _log(f"  cold starts: round {number}/{runs} done")
    return {
        variant: {key: report.summarize_cold(values) for key, values in by_handler.items()}
        for variant, by_handler in samples.items()
    }


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    result: dict[str, Any] = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "make bench",
        "machine": machine(),
        "method": {
            "cold_runs": args.cold_runs,
            "warm_invocations": args.warm_invocations,
            "warm_rounds": args.warm_rounds,
            "warm_batch": WARM_BATCH,
            "import_runs": args.import_runs,
            "full_run": args.cold_runs >= MIN_COLD_RUNS
            and args.warm_invocations >= MIN_WARM_INVOCATIONS,
            "cold_start": "fresh `python -S` process in the bundle folder: import the handler, "
            "answer one API Gateway 2.0 GET /api/users/me (valid token, one DB read)",
            "bundle_folders": "A: the API bundle's dependencies and parts of lambda_app, "
            "chosen by its own recipe (infra_cdk.bundling.copy_sources and prune); B and C: "
            "the same dependencies unpruned, as `pip install --target` ships them",
            "no_bytecode": "bundle without any .pyc, PYTHONDONTWRITEBYTECODE=1",
            "precompiled": "same bundle plus unchecked-hash .pyc files",
            "warm": "one process per handler (precompiled folders), after its first request; "
            "A, B and C alive side by side, taking turns of "
            f"{WARM_BATCH} invocations in a rotating order; of several rounds, the process "
            "with the median p50 reported",
            "peak_rss": "VmHWM of that warm process after all its invocations",
        },
        "handlers": {h.key: {"label": h.label, "entry_point": h.spec} for h in HANDLERS},
    }
    with tempfile.TemporaryDirectory(prefix="lambda-app-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        _log("building bundle folders (no bytecode / precompiled)...")
        bundles = build_local_bundles(scratch / "run")
        result["method"]["precompiled_pyc_files"] = {
            folder: bytecode_files(variants[PRECOMPILED]) for folder, variants in bundles.items()
        }
        _log(f"creating and seeding database {args.database}...")
        with bench_database(args.database) as db:
            event = api_gateway_v2_event(db.token)
            # The embedded server has no TLS: all three handlers connect without
            # negotiating it, so none pays for an SSL context the others skip.
            plain_url = f"{db.url}?ssl=disable"

            def env_for(bundle: Path) -> dict[str, str]:
                return child_environment(
                    bundle=bundle, database_url=plain_url, jwt_secret=BENCH_JWT_SECRET
                )

            def run(handler: Handler, variant: str) -> dict[str, Any]:
                bundle = bundles[handler.folder][variant]
                return run_handler_process(handler, bundle=bundle, env=env_for(bundle), event=event)

            _log(f"cold starts: {args.cold_runs} rounds of A, B, C x 2 variants...")
            result["cold_start"] = measure_cold_starts(run, db, args.cold_runs)

            warm_rounds: dict[str, list[dict[str, Any]]] = {h.key: [] for h in HANDLERS}
            warm_runs = [
                (h, bundles[h.folder][PRECOMPILED], env_for(bundles[h.folder][PRECOMPILED]))
                for h in HANDLERS
            ]
            for number in range(1, args.warm_rounds + 1):
                _log(
                    f"warm: round {number}/{args.warm_rounds}, {args.warm_invocations} "
                    "invocations of A, B and C, interleaved..."
                )
                warm = run_warm_interleaved(
                    warm_runs, event=event, invocations=args.warm_invocations
                )
                for handler in HANDLERS:
                    _check_answer(handler, warm[handler.key], db)
                    warm_rounds[handler.key].append(report.summarize_warm(warm[handler.key]))
            result["warm"] = {key: report.median_round(r) for key, r in warm_rounds.items()}

            _log(f"import profile of A ({args.import_runs} processes)...")
            api = HANDLERS[0]
            api_bundle = bundles[api.folder][PRECOMPILED]
            timings = profile_imports(
                api.spec.partition(":")[0],
                bundle=api_bundle,
                env=env_for(api_bundle),
                runs=args.import_runs,
            )
        result["import_time_top10"] = [
            {
                "module": t.module,
                "cumulative_ms": t.cumulative_us / 1000,
                "self_ms": t.self_us / 1000,
            }
            for t in top_by_cumulative(timings)
        ]
        result["import_time_top10_self"] = [
            {"module": t.module, "self_ms": t.self_us / 1000} for t in top_by_self(timings)
        ]
        result["import_modules"] = len(timings)

        if args.skip_bundle_size:
            result["bundle"] = {"status": "skipped", "reason": "--skip-bundle-size"}
        else:
            _log("building the Lambda bundle (infra_cdk bundler) for its zipped size...")
            result["bundle"] = lambda_bundle_size(scratch / "lambda")

    result["figures"] = report.headline_figures(result)
    result["ratios"] = report.ratios(result["figures"])
    result["targets"] = report.evaluate_targets(result)
    result["duration_s"] = round(time.perf_counter() - started, 1)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--cold-runs", type=int, default=15, help="fresh processes per handler")
    parser.add_argument("--warm-invocations", type=int, default=2000, help="per warm process")
    parser.add_argument("--warm-rounds", type=int, default=3, help="warm processes per handler")
    parser.add_argument("--import-runs", type=int, default=5, help="-X importtime processes")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--database", default=BENCH_DATABASE)
    parser.add_argument("--skip-bundle-size", action="store_true")
    parser.add_argument("--markdown", type=Path, help="also write the figures as Markdown here")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny counts, no bundle build: checks it still runs"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.cold_runs, args.warm_invocations, args.import_runs = 1, 20, 1
        args.warm_rounds = 1
        args.skip_bundle_size = True
    counts = (args.cold_runs, args.warm_invocations, args.warm_rounds, args.import_runs)
    if min(counts) < 1:
        parser.error("counts must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run_benchmark(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.markdown is not None:
        args.markdown.write_text(report.render_markdown(result), encoding="utf-8")
    print(report.render_table(result))
    print(f"\nwritten: {args.output}")
    return 0
