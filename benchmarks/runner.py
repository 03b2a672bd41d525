"""`python -m benchmarks`: measure A, B and C in one run, print a table, write JSON.

One run, one PostgreSQL, one seeded user, the same API Gateway 2.0 event for every
handler. Cold starts are interleaved (A, B, C, S, A, B, C, S, ...) so a busy moment
on the machine hits all of them alike and the ratios stay fair.
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
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.arm64 import measure_arm64_cold_starts
from benchmarks.bundle_size import lambda_bundle_size
from benchmarks.bundles import (
    NO_BYTECODE,
    PRECOMPILED,
    LocalBundles,
    build_local_bundles,
    bytecode_files,
    smoke_bundles,
)
from benchmarks.database import BENCH_DATABASE, BENCH_JWT_SECRET, BenchDatabase, bench_database
from benchmarks.importtime import ImportTiming, profile_imports, top_by_cumulative, top_by_self
from benchmarks.interpreter import Interpreter, InterpreterMissing, lambda_interpreter
from benchmarks.kept_connection import measure_kept_connection
from benchmarks.processes import (
    C_NULLPOOL,
    HANDLERS,
    STACK,
    WARM_BATCH,
    Handler,
    api_gateway_v2_event,
    child_environment,
    measure_warm_rounds,
    run_handler_process,
)

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "latest.json"
# The method's minimums: fewer (smoke mode) still runs, but is flagged as not a full run.
MIN_COLD_RUNS = 10
MIN_WARM_INVOCATIONS = 2000
WARM_VARIANT = PRECOMPILED  # warm processes, the kept connection and the import profile


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


# Cold rounds start the three handlers and S, the stack alone (their floor), in turn.
COLD_HANDLERS = (*HANDLERS, STACK)
# Warm processes: the three handlers and C-null, C with A's and B's connection per request.
WARM_HANDLERS = (*HANDLERS, C_NULLPOOL)


def _check_answer(handler: Handler, result: dict[str, Any], db: BenchDatabase) -> None:
    """Each handler must answer with the seeded user: a fast wrong answer counts for nothing."""
    if handler.import_only:
        return
    body = json.loads(result["first_body"])
    if body.get("id") != db.user_id or body.get("username") != db.username:
        raise RuntimeError(f"handler {handler.key} answered the wrong body: {body}")
    if result.get("warm_failures"):
        raise RuntimeError(f"handler {handler.key} failed {result['warm_failures']} warm calls")


def measure_cold_starts(
    run: Callable[[Handler, str], dict[str, Any]],
    db: BenchDatabase,
    runs: int,
    variants: tuple[str, ...],
    handlers: tuple[Handler, ...] = COLD_HANDLERS,
) -> dict[str, dict[str, Any]]:
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {
        variant: {h.key: [] for h in handlers} for variant in variants
    }
    for number in range(1, runs + 1):
        for variant in variants:
            for handler in handlers:
                result = run(handler, variant)
                _check_answer(handler, result, db)
                samples[variant][handler.key].append(result)
        _log(f"  cold starts: round {number}/{runs} done")
    return {
        variant: {key: report.summarize_cold(values) for key, values in by_handler.items()}
        for variant, by_handler in samples.items()
    }


def run_phases(phases: dict[str, Callable[[], Any]], *, overlap: bool) -> dict[str, Any]:
    """Each phase's result, by name: one after another, or two at a time with `overlap`.

    Only the smoke run overlaps them: it proves that every phase runs and reports, and
    the machine has two cores. A measuring run never does, because a process measured
    while another runs would share the CPU with it.
    """
    if not overlap:
        return {name: phase() for name, phase in phases.items()}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(phase) for name, phase in phases.items()}
        wait(futures.values(), return_when=FIRST_EXCEPTION)
        if failed := next((f for f in futures.values() if f.done() and f.exception()), None):
            pool.shutdown(wait=False, cancel_futures=True)  # the phases not started yet
            failed.result()  # raises the phase's error
        return {name: future.result() for name, future in futures.items()}


@dataclass
class _Run:
    """One run's measuring phases, against one seeded database and one set of folders."""

    args: argparse.Namespace
    python: str
    folders: dict[str, dict[str, Path]]
    db: BenchDatabase
    variants: tuple[str, ...]
    event: dict[str, Any] = field(init=False)  # the one event every process answers

    def __post_init__(self) -> None:
        self.event = api_gateway_v2_event(self.db.token)

    def environment(self, bundle: Path) -> dict[str, str]:
        # The embedded server has no TLS: every handler connects without negotiating
        # it, so none pays for an SSL context the others skip.
        return child_environment(
            bundle=bundle, database_url=f"{self.db.url}?ssl=disable", jwt_secret=BENCH_JWT_SECRET
        )

    def _start(self, handler: Handler, variant: str) -> dict[str, Any]:
        bundle = self.folders[handler.folder][variant]
        return run_handler_process(
            handler,
            python=self.python,
            bundle=bundle,
            env=self.environment(bundle),
            event=self.event,
        )

    def cold_starts(self, handlers: tuple[Handler, ...] = COLD_HANDLERS) -> dict[str, Any]:
        runs, variants = self.args.cold_runs, self.variants
        keys = ", ".join(h.key for h in handlers)
        _log(f"cold starts: {runs} rounds of {keys} x {len(variants)} variants...")
        return measure_cold_starts(self._start, self.db, runs, variants, handlers)

    def stack_cold_start(self) -> dict[str, Any]:
        return self.cold_starts((STACK,))

    def warm(self) -> dict[str, dict[str, Any]]:
        rounds, invocations = self.args.warm_rounds, self.args.warm_invocations
        runs = [
            (h, bundle, self.environment(bundle))
            for h in WARM_HANDLERS
            for bundle in [self.folders[h.folder][WARM_VARIANT]]
        ]
        keys = ", ".join(h.key for h in WARM_HANDLERS)
        _log(f"warm: {rounds} rounds of {invocations} invocations of {keys}, in turns...")
        return measure_warm_rounds(
            runs,
            python=self.python,
            event=self.event,
            invocations=invocations,
            rounds=rounds,
            check=lambda handler, result: _check_answer(handler, result, self.db),
        )

    def _api_bundle(self) -> Path:
        return self.folders[HANDLERS[0].folder][WARM_VARIANT]

    def kept_connection(self) -> dict[str, Any]:
        _log("kept connection: A with DB_POOL=null and single through PgBouncer with TLS...")
        return measure_kept_connection(
            python=self.python,
            bundle=self._api_bundle(),
            database_url=self.db.url,
            environment=self.environment(self._api_bundle()),
            event=self.event,
            invocations=self.args.warm_invocations,
            rounds=self.args.warm_rounds,
        )

    def import_profile(self) -> list[ImportTiming]:
        _log(f"import profile of A ({self.args.import_runs} processes)...")
        return profile_imports(
            HANDLERS[0].spec.partition(":")[0],
            python=self.python,
            bundle=self._api_bundle(),
            env=self.environment(self._api_bundle()),
            runs=self.args.import_runs,
        )


def _method(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "cold_runs": args.cold_runs,
        "warm_invocations": args.warm_invocations,
        "warm_rounds": args.warm_rounds,
        "warm_batch": WARM_BATCH,
        "import_runs": args.import_runs,
        "arm64_runs": args.arm64_runs,
        "full_run": not args.smoke
        and args.cold_runs >= MIN_COLD_RUNS
        and args.warm_invocations >= MIN_WARM_INVOCATIONS,
        "cold_start": "fresh `python3.13 -S` process in the bundle folder: import the handler, "
        "answer one API Gateway 2.0 GET /api/users/me (valid token, one DB read); S imports "
        "only",
        "bundle_folders": "A: the API bundle built by its own recipe (infra_cdk.bundling."
        "build_bundle: cp313 wheels, pruned, stripped, unchecked-hash .pyc compiled by 3.13) "
        "for this machine's architecture; B and C: the same locked cp313 wheels as "
        "`pip install --target` leaves them",
        "no_bytecode": "the same folders without any .pyc, PYTHONDONTWRITEBYTECODE=1",
        "precompiled": "the folders with unchecked-hash .pyc files compiled by 3.13",
        "warm": "one process per handler (precompiled folders), after its first request; "
        "A, B, C and C-null alive side by side, taking turns of "
        f"{WARM_BATCH} invocations in a rotating order; of several rounds, the process "
        "with the median p50 reported",
        "peak_rss": "VmHWM of that warm process after all its invocations",
        "kept_connection": "A with DB_POOL=null and A with DB_POOL=single, side by side as "
        "the warm run, through PgBouncer with client TLS",
        "init_cost": report.INIT_PRICE_SOURCE,
    } | (
        {
            "smoke": "each handler started once: the cold figures of A, B and C are their warm "
            "processes' starts; tiny counts, phases overlapped: no figure means anything"
        }
        if args.smoke
        else {}
    )


def _phases(run: _Run, *, smoke: bool) -> dict[str, Callable[[], Any]]:
    """The measuring phases. The smoke run starts each handler once: a warm process's
    own start (a fresh interpreter, the import and the first answer) is its cold start,
    and only S, which no warm process runs, gets a cold process of its own."""
    cold = {"stack_cold_start": run.stack_cold_start} if smoke else {"cold_start": run.cold_starts}
    return {
        **cold,
        "warm": run.warm,
        "kept_connection": run.kept_connection,
        "imports": run.import_profile,
    }


def _smoke_cold_starts(
    stack: dict[str, dict[str, Any]], warm: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Cold figures of the smoke run's single processes: S's own and each warm
    process's start (its peak RSS is after its warm calls: no figure of a real run)."""
    started = {
        h.key: report.summarize_cold(
            [warm[h.key]["start"] | {"peak_rss_kib": warm[h.key]["peak_rss_mib"] * 1024}]
        )
        for h in HANDLERS
    }
    return {PRECOMPILED: started | stack[PRECOMPILED]}


def _bundle_folders(args: argparse.Namespace, python: Interpreter, root: Path) -> LocalBundles:
    if args.smoke:
        return smoke_bundles(root, python=python.path, python_version=python.version)
    return build_local_bundles(root, python=python.path)


def _local_bundle_figures(bundles: LocalBundles) -> dict[str, Any]:
    zipped = bundles.api_zipped_bytes
    return {
        "path": str(bundles.api_path),
        "target": bundles.api_target,
        "unzipped_mb": round(bundles.api_unzipped_bytes / 1_000_000, 2),
        "zipped_mb": None if zipped is None else round(zipped / 1_000_000, 2),
    }


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    python = lambda_interpreter()  # first: stop before any work without CPython 3.13
    result: dict[str, Any] = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "make bench",
        "machine": machine() | {"python": python.version, "python_path": python.path},
        "method": _method(args),
        "handlers": {
            h.key: {"label": h.label, "entry_point": h.spec} for h in (*HANDLERS, STACK, C_NULLPOOL)
        },
    }
    # The smoke run: precompiled only (a process compiling its imports takes seconds).
    variants = (PRECOMPILED,) if args.smoke else (NO_BYTECODE, PRECOMPILED)
    with (
        tempfile.TemporaryDirectory(prefix="lambda-app-bench-") as scratch_dir,
        ThreadPoolExecutor(max_workers=1) as builder,
    ):
        scratch = Path(scratch_dir)
        _log(f"building the bundle folders for CPython {python.version} ({python.path})...")
        # Built while the database is made: both mostly wait on subprocesses, and nothing
        # is measured before both are done.
        building = builder.submit(_bundle_folders, args, python, scratch / "run")
        _log(f"creating and seeding database {args.database}...")
        with bench_database(args.database) as db:
            bundles = building.result()
            folders = bundles.folders
            result["local_bundle"] = _local_bundle_figures(bundles)
            result["method"]["precompiled_pyc_files"] = {
                folder: bytecode_files(by_variant[WARM_VARIANT])
                for folder, by_variant in folders.items()
            }
            run = _Run(args=args, python=python.path, folders=folders, db=db, variants=variants)
            measured = run_phases(_phases(run, smoke=args.smoke), overlap=args.smoke)
            if args.smoke:
                measured["cold_start"] = _smoke_cold_starts(
                    measured.pop("stack_cold_start"), measured["warm"]
                )
            timings = measured.pop("imports")
            result |= measured

            if args.smoke or args.arm64_runs == 0:
                result["bundle"] = {"status": "skipped", "reason": "--smoke or --skip-bundle-size"}
                result["arm64"] = {"status": "skipped", "reason": "--smoke or --arm64-runs 0"}
            else:
                _log("building the Lambda bundle (infra_cdk bundler) for its zipped size...")
                result["bundle"] = lambda_bundle_size(scratch / "lambda")
                _log(f"arm64 sanity check: A and C under qemu, {args.arm64_runs} each...")
                result["arm64"] = _arm64(result["bundle"], db, run.event, args.arm64_runs)
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

    result["figures"] = report.headline_figures(result)
    result["ratios"] = report.ratios(result["figures"])
    result["references"] = report.references(result)
    result["init_cost"] = report.init_cost(result)
    result["targets"] = report.evaluate_targets(result)
    result["duration_s"] = round(time.perf_counter() - started, 1)
    return result


def _arm64(
    bundle: dict[str, Any], db: BenchDatabase, event: dict[str, Any], runs: int
) -> dict[str, Any]:
    if bundle.get("status") != "ok":
        return {"status": "skipped", "reason": "the aarch64 bundle was not built"}
    environment = {
        "ENVIRONMENT": "prod",
        "LOG_LEVEL": "INFO",
        "DATABASE_URL": f"{db.url}?ssl=disable",
        "JWT_SECRET": BENCH_JWT_SECRET,
    }
    try:
        return measure_arm64_cold_starts(
            api_bundle=Path(bundle["path"]), environment=environment, event=event, runs=runs
        )
    except Exception as exc:  # a sanity check: reported, never fatal to the run
        return {"status": "failed", "reason": f"{type(exc).__name__}: {str(exc)[-1500:]}"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--cold-runs", type=int, default=15, help="fresh processes per handler")
    parser.add_argument("--warm-invocations", type=int, default=2000, help="per warm process")
    parser.add_argument("--warm-rounds", type=int, default=3, help="warm processes per handler")
    parser.add_argument("--import-runs", type=int, default=5, help="-X importtime processes")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--database", default=BENCH_DATABASE)
    parser.add_argument(
        "--arm64-runs",
        type=int,
        default=3,
        help="cold starts of A and of C under qemu from aarch64 bundles (0: skip them and "
        "the Lambda bundle's zipped size)",
    )
    parser.add_argument("--markdown", type=Path, help="also write the figures as Markdown here")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny counts, no bundle build: checks it still runs"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.cold_runs, args.warm_invocations, args.import_runs = 1, 5, 1
        args.warm_rounds, args.arm64_runs = 1, 0
    counts = (args.cold_runs, args.warm_invocations, args.warm_rounds, args.import_runs)
    if min(counts) < 1 or args.arm64_runs < 0:
        parser.error("counts must be at least 1 (--arm64-runs at least 0)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run_benchmark(args)
    except InterpreterMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.markdown is not None:
        args.markdown.write_text(report.render_markdown(result), encoding="utf-8")
    print(report.render_table(result))
    print(f"\nwritten: {args.output}")
    return 0
