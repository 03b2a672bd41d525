"""Turning raw samples into figures, ratios, target verdicts and a printed table."""

from __future__ import annotations

import math
import statistics
from typing import Any

HANDLER_KEYS = ("A", "B", "C")
COLD_VARIANTS = ("no-bytecode", "precompiled")
BUNDLE_LIMIT_MB = 15.0

# What a million cold starts' INIT phase costs (billed for on-demand ZIP functions since
# 2025-08-01): INIT duration x 1,024 MB x Lambda's arm64 price per GB-second.
INIT_MEMORY_MB = 1024
ARM64_PRICE_PER_GB_SECOND = 0.0000133334
INIT_PRICE_SOURCE = (
    "AWS Lambda pricing page, arm64, us-east-1, first tier: $0.0000133334 per GB-second, "
    "the price published since arm64 functions launched (2021-09-29); not re-fetched when "
    "this run was made. INIT duration = the median import time of the precompiled cold "
    "starts here (x86_64, not Graviton), at 1,024 MB"
)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize_cold(samples: list[dict[str, Any]]) -> dict[str, Any]:
    cold = [s["cold_ms"] for s in samples]
    return {
        "median_ms": round(statistics.median(cold), 2),
        "min_ms": round(min(cold), 2),
        "max_ms": round(max(cold), 2),
        "import_median_ms": round(statistics.median(s["import_ms"] for s in samples), 2),
        "first_invoke_median_ms": round(
            statistics.median(s["first_invoke_ms"] for s in samples), 2
        ),
        "peak_rss_median_mib": round(
            statistics.median(s["peak_rss_kib"] for s in samples) / 1024, 1
        ),
        "processes": len(samples),
        "samples_ms": [round(v, 2) for v in cold],
    }


def summarize_warm(sample: dict[str, Any]) -> dict[str, Any]:
    latencies: list[float] = sample["warm_ms"]
    return {
        "p50_ms": round(percentile(latencies, 50), 3),
        "p99_ms": round(percentile(latencies, 99), 3),
        "mean_ms": round(statistics.fmean(latencies), 3),
        "max_ms": round(max(latencies), 3),
        "invocations": len(latencies),
        "failures": sample["warm_failures"],
        "peak_rss_mib": round(sample["peak_rss_kib"] / 1024, 1),
        # The process's own start, a cold start like any other (the smoke run's only one).
        "start": {key: sample[key] for key in ("cold_ms", "import_ms", "first_invoke_ms")},
        "handler_file": sample["handler_file"],
    }


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Of several warm processes, the one with the median p50, with every round's figures.

    One process keeps its own p50, p99 and RSS together; the rounds only guard
    against a busy machine slowing one handler's single run.
    """
    ordered = sorted(rounds, key=lambda r: r["p50_ms"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["rounds"] = [{"p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"]} for r in rounds]
    return chosen


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def ratios(figures: dict[str, dict[str, float | None]]) -> dict[str, dict[str, float | None]]:
    """{metric: {"A/B": ..., "A/C": ...}} for every metric with A, B and C values."""
    return {
        metric: {"A/B": _ratio(values["A"], values["B"]), "A/C": _ratio(values["A"], values["C"])}
        for metric, values in figures.items()
    }


def _cold_medians(result: dict[str, Any], variant: str) -> dict[str, float | None]:
    measured = result["cold_start"].get(variant)
    return {k: measured[k]["median_ms"] if measured else None for k in HANDLER_KEYS}


def headline_figures(result: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    warm = result["warm"]
    return {
        "cold_no_bytecode_ms": _cold_medians(result, "no-bytecode"),
        "cold_precompiled_ms": _cold_medians(result, "precompiled"),
        "warm_p50_ms": {k: warm[k]["p50_ms"] for k in HANDLER_KEYS},
        "warm_p99_ms": {k: warm[k]["p99_ms"] for k in HANDLER_KEYS},
        "peak_rss_mib": {k: warm[k]["peak_rss_mib"] for k in HANDLER_KEYS},
    }


def references(result: dict[str, Any]) -> dict[str, Any]:
    """What the targets are up against, from the same run.

    S (the stack alone, imported: no app, no request) is the floor under A's and C's cold
    starts and memory. C-null (C with NullPool) is C connecting per request, as A and B
    do: the stack's own warm cost next to B's.
    """
    figures: dict[str, Any] = {}
    for variant, measured in result["cold_start"].items():
        stack, peer = measured["S"]["median_ms"], measured["C"]["median_ms"]
        figures[f"cold_{variant.replace('-', '_')}"] = {
            "S_ms": stack,
            "S/C": _ratio(stack, peer),
            "A-S_ms": round(measured["A"]["median_ms"] - stack, 2),
        }
    cold = result["cold_start"]["precompiled"]  # every run measures it, the smoke run only it
    figures["peak_rss_cold"] = {
        "S_mib": cold["S"]["peak_rss_median_mib"],
        "C_mib": cold["C"]["peak_rss_median_mib"],
        "S/C": _ratio(cold["S"]["peak_rss_median_mib"], cold["C"]["peak_rss_median_mib"]),
    }
    warm, peer_null = result["warm"], result["warm"]["C-null"]
    figures["warm_p50"] = {
        "C-null_ms": peer_null["p50_ms"],
        "C-null/B": _ratio(peer_null["p50_ms"], warm["B"]["p50_ms"]),
        "A/C-null": _ratio(warm["A"]["p50_ms"], peer_null["p50_ms"]),
    }
    return figures


def init_cost(result: dict[str, Any]) -> dict[str, Any]:
    """USD for a million cold starts' INIT phase, for A and C (precompiled)."""
    cold = result["cold_start"]["precompiled"]
    costs: dict[str, Any] = {
        "memory_mb": INIT_MEMORY_MB,
        "price_per_gb_second": ARM64_PRICE_PER_GB_SECOND,
    }
    gigabytes = INIT_MEMORY_MB / 1024
    for key in ("A", "C"):
        init_s = cold[key]["import_median_ms"] / 1000
        costs[key] = {
            "init_ms": cold[key]["import_median_ms"],
            "usd_per_million": round(init_s * gigabytes * ARM64_PRICE_PER_GB_SECOND * 1e6, 2),
        }
    return costs


def _target(
    name: str, value: float | None, limit: float, *, at_most: bool = True
) -> dict[str, Any]:
    met = value is not None and (value <= limit if at_most else value >= limit)
    return {"target": name, "value": value, "limit": limit, "met": met}


def evaluate_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    r = result["ratios"]
    bundle = result["bundle"]
    bundle_mb = bundle.get("zipped_mb") if bundle.get("status") == "ok" else None
    kept = result["kept_connection"]
    return [
        _target("A cold start (precompiled) <= 0.85x C", r["cold_precompiled_ms"]["A/C"], 0.85),
        _target("A warm p50 <= 1.3x B", r["warm_p50_ms"]["A/B"], 1.3),
        _target("A peak RSS <= 1.0x C", r["peak_rss_mib"]["A/C"], 1.0),
        _target("zipped API bundle <= 15 MB", bundle_mb, BUNDLE_LIMIT_MB),
        _target(
            "DB_POOL=single warm p50 >= 1.5x faster than null (TLS proxy)",
            kept["null/single p50"],
            1.5,
            at_most=False,
        ),
    ]


# The table's rows, in both renderings: (label, metric in headline_figures, decimals).
FIGURE_ROWS = (
    ("cold start, no bytecode (ms, median)", "cold_no_bytecode_ms", 0),
    ("cold start, precompiled (ms, median)", "cold_precompiled_ms", 0),
    ("warm p50 (ms)", "warm_p50_ms", 2),
    ("warm p99 (ms)", "warm_p99_ms", 2),
    ("peak RSS (MiB)", "peak_rss_mib", 1),
)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def setup_lines(result: dict[str, Any]) -> list[str]:
    """What the run measured with: the interpreter and A's bundle."""
    machine, local = result["machine"], result["local_bundle"]
    return [
        f"interpreter: CPython {machine['python']} ({machine['python_path']})",
        f"A's bundle ({local['target']}, the Lambda recipe for this machine): {local['path']}, "
        f"{local['unzipped_mb']} MB unzipped, "
        + (
            "not zipped (--smoke)"
            if local["zipped_mb"] is None
            else f"{local['zipped_mb']} MB zipped"
        ),
    ]


def extra_lines(result: dict[str, Any]) -> list[str]:
    """The kept-connection comparison, the INIT cost and the arm64 check, one line each."""
    kept = result["kept_connection"]
    null, single = kept["null"], kept["single"]
    costs = result["init_cost"]
    refs = result["references"]
    cold = refs["cold_precompiled"]
    rss, warm = refs["peak_rss_cold"], refs["warm_p50"]
    lines = [
        f"S, the stack alone (imported, no app, no request): cold start {cold['S_ms']:.0f} ms, "
        f"S/C {cold['S/C']} (A spends {cold['A-S_ms']:.0f} ms more than S); peak RSS "
        f"{rss['S_mib']} MiB, S/C {rss['S/C']} (cold processes)",
        f"C-null, C with NullPool (a connection per request, as A and B): warm p50 "
        f"{warm['C-null_ms']:.2f} ms, C-null/B {warm['C-null/B']}, A/C-null {warm['A/C-null']}",
        f"A through {kept['proxy']}: DB_POOL=null p50 {null['p50_ms']:.2f} ms / p99 "
        f"{null['p99_ms']:.2f} ms / {null['peak_rss_mib']} MiB, DB_POOL=single p50 "
        f"{single['p50_ms']:.2f} ms / p99 {single['p99_ms']:.2f} ms / "
        f"{single['peak_rss_mib']} MiB: null/single {kept['null/single p50']}x (p50), "
        f"{kept['null/single p99']}x (p99)",
        f"INIT cost of a million cold starts at {costs['memory_mb']} MB on arm64: A "
        f"${costs['A']['usd_per_million']:.2f} (init {costs['A']['init_ms']:.0f} ms), C "
        f"${costs['C']['usd_per_million']:.2f} (init {costs['C']['init_ms']:.0f} ms), at "
        f"${costs['price_per_gb_second']} per GB-second",
    ]
    arm64 = result["arm64"]
    if arm64.get("status") == "ok":
        lines.append(
            f"arm64 sanity check (qemu -cpu {arm64['qemu_cpu']}, median of "
            f"{arm64['processes']}): A {arm64['A']['cold_median_ms']} ms (init "
            f"{arm64['A']['init_median_ms']}), C {arm64['C']['cold_median_ms']} ms (init "
            f"{arm64['C']['init_median_ms']}), A/C {arm64['A/C']}"
        )
    else:
        lines.append(f"arm64 sanity check: {arm64.get('status')} ({arm64.get('reason', '')})")
    return lines


def render_table(result: dict[str, Any]) -> str:
    figures = headline_figures(result)
    lines = [*setup_lines(result), ""]
    lines.append(f"{'':40}{'A':>9}{'B':>9}{'C':>9}{'A/B':>8}{'A/C':>8}")
    for label, metric, digits in FIGURE_ROWS:
        values = figures[metric]
        ratio = result["ratios"][metric]
        lines.append(
            f"{label:40}"
            + "".join(f"{_fmt(values[k], digits):>9}" for k in HANDLER_KEYS)
            + f"{_fmt(ratio['A/B'], 2):>8}{_fmt(ratio['A/C'], 2):>8}"
        )
    bundle = result["bundle"]
    if bundle.get("status") == "ok":
        lines.append(f"\nzipped API bundle ({bundle['target']}): {bundle['zipped_mb']} MB")
    else:
        lines.append(f"\nzipped API bundle: {bundle.get('status')} ({bundle.get('reason', '')})")
    lines += ["", *extra_lines(result)]
    lines.append("\ntargets:")
    for target in result["targets"]:
        verdict = "met" if target["met"] else "NOT met"
        lines.append(f"  {target['target']:62} {_fmt(target['value'], 3):>8}  {verdict}")
    lines.append("\nA's import, top 10 modules by cumulative time (ms):")
    for entry in result["import_time_top10"]:
        lines.append(
            f"  {entry['cumulative_ms']:8.1f}  {entry['module']}  (self {entry['self_ms']:.1f})"
        )
    return "\n".join(lines)


def render_markdown(result: dict[str, Any]) -> str:
    """The figures as Markdown: the committed copy (benchmarks/RESULTS.md)."""
    machine = result["machine"]
    method = result["method"]
    figures = headline_figures(result)
    lines = [
        "# Benchmark results",
        "",
        f"Measured {result['generated_at']} with `{result['command']}` on {machine['nproc']} x "
        f"{machine['cpu_model']} ({machine['platform']}), every process under CPython "
        f"{machine['python']}; {method['cold_runs']} fresh processes per handler and variant, "
        f"{method['warm_invocations']} warm invocations per process, A, B, C and C-null taking "
        f"turns of {method['warm_batch']} (median-p50 process of {method['warm_rounds']} "
        "per handler). "
        "A = this project's handler, B = bare asyncpg + hmac handler (the floor), "
        "C = tutorial-style FastAPI + SQLAlchemy + Mangum app (the peer); references: "
        "S = the libraries A and C share, imported and nothing else (the cold-start floor), "
        "C-null = C with NullPool.",
        "",
        *(f"- {line}" for line in setup_lines(result)),
        "",
        "| | A | B | C | A/B | A/C |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, metric, digits in FIGURE_ROWS:
        values = figures[metric]
        ratio = result["ratios"][metric]
        cells = " | ".join(_fmt(values[k], digits) for k in HANDLER_KEYS)
        lines.append(f"| {label} | {cells} | {_fmt(ratio['A/B'], 2)} | {_fmt(ratio['A/C'], 2)} |")
    bundle = result["bundle"]
    lines += ["", "| target | measured | limit | met |", "|---|---:|---:|---|"]
    for target in result["targets"]:
        verdict = "yes" if target["met"] else "**no**"
        lines.append(
            f"| {target['target']} | {_fmt(target['value'], 3)} | {target['limit']} | {verdict} |"
        )
    lines += ["", *(f"- {line}" for line in extra_lines(result))]
    lines += ["", f"INIT price: {method['init_cost']}.", "", "Zipped API bundle: "]
    if bundle.get("status") == "ok":
        largest = ", ".join(
            f"{name} {size} kB" for name, size in bundle["largest_zipped_entries_kb"].items()
        )
        lines[-1] += (
            f"{bundle['zipped_mb']} MB ({bundle['target']}, {bundle['unzipped_mb']} MB "
            f"unzipped). Largest entries, zipped: {largest}."
        )
    else:
        lines[-1] += f"{bundle.get('status')} ({bundle.get('reason', '')})."
    lines += ["", "A's import, top 10 modules by cumulative time (precompiled bundle, median):", ""]
    lines += ["| module | cumulative (ms) | self (ms) |", "|---|---:|---:|"]
    for entry in result["import_time_top10"]:
        lines.append(
            f"| `{entry['module']}` | {entry['cumulative_ms']:.1f} | {entry['self_ms']:.1f} |"
        )
    return "\n".join(lines) + "\n"
