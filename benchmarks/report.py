"""Turning raw samples into figures, ratios, target verdicts and a printed table."""

from __future__ import annotations

import math
import statistics
from typing import Any

HANDLER_KEYS = ("A", "B", "C")
COLD_VARIANTS = ("no-bytecode", "precompiled")
BUNDLE_LIMIT_MB = 15.0


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


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def ratios(figures: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    """{metric: {"A/B": ..., "A/C": ...}} for every metric with A, B and C values."""
    return {
        metric: {"A/B": _ratio(values["A"], values["B"]), "A/C": _ratio(values["A"], values["C"])}
        for metric, values in figures.items()
    }


def headline_figures(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    cold = result["cold_start"]
    warm = result["warm"]
    return {
        "cold_no_bytecode_ms": {k: cold["no-bytecode"][k]["median_ms"] for k in HANDLER_KEYS},
        "cold_precompiled_ms": {k: cold["precompiled"][k]["median_ms"] for k in HANDLER_KEYS},
        "warm_p50_ms": {k: warm[k]["p50_ms"] for k in HANDLER_KEYS},
        "warm_p99_ms": {k: warm[k]["p99_ms"] for k in HANDLER_KEYS},
        "peak_rss_mib": {k: warm[k]["peak_rss_mib"] for k in HANDLER_KEYS},
    }


def _target(
    name: str, value: float | None, limit: float, *, at_most: bool = True
) -> dict[str, Any]:
    met = value is not None and (value <= limit if at_most else value >= limit)
    return {"target": name, "value": value, "limit": limit, "met": met}


def evaluate_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    r = result["ratios"]
    cold = result["cold_start"]
    a_plain = cold["no-bytecode"]["A"]["median_ms"]
    a_compiled = cold["precompiled"]["A"]["median_ms"]
    reduction = round(1 - a_compiled / a_plain, 3) if a_plain else None
    bundle = result["bundle"]
    bundle_mb = bundle.get("zipped_mb") if bundle.get("status") == "ok" else None
    return [
        _target("A cold start (precompiled) <= 1.0x C", r["cold_precompiled_ms"]["A/C"], 1.0),
        _target("A cold start (no bytecode) <= 1.0x C", r["cold_no_bytecode_ms"]["A/C"], 1.0),
        _target(
            "A precompiled cold start >= 30% below no bytecode", reduction, 0.30, at_most=False
        ),
        _target("A warm p50 <= 1.3x B", r["warm_p50_ms"]["A/B"], 1.3),
        _target("A peak RSS <= 1.1x C", r["peak_rss_mib"]["A/C"], 1.1),
        _target("zipped API bundle <= 15 MB", bundle_mb, BUNDLE_LIMIT_MB),
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


def render_table(result: dict[str, Any]) -> str:
    figures = headline_figures(result)
    lines = [f"{'':40}{'A':>9}{'B':>9}{'C':>9}{'A/B':>8}{'A/C':>8}"]
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
    lines.append("\ntargets:")
    for target in result["targets"]:
        verdict = "met" if target["met"] else "NOT met"
        lines.append(f"  {target['target']:52} {_fmt(target['value'], 3):>8}  {verdict}")
    lines.append("\nA's import, top 10 modules by cumulative time (ms):")
    for entry in result["import_time_top10"]:
        lines.append(
            f"  {entry['cumulative_ms']:8.1f}  {entry['module']}  (self {entry['self_ms']:.1f})"
        )
    return "\n".join(lines)


def render_markdown(result: dict[str, Any]) -> str:
    """The figures as Markdown: the committed copy (benchmarks/RESULTS.md) and the README."""
    machine = result["machine"]
    method = result["method"]
    figures = headline_figures(result)
    lines = [
        "# Benchmark results",
        "",
        f"Measured {result['generated_at']} with `{result['command']}` on {machine['nproc']} x "
        f"{machine['cpu_model']}, Python {machine['python']} ({machine['platform']}); "
        f"{method['cold_runs']} fresh processes per handler and variant, "
        f"{method['warm_invocations']} warm invocations per process, A, B and C taking turns "
        f"of {method['warm_batch']} (median-p50 process of {method['warm_rounds']} "
        "per handler). "
        "A = this project's handler, B = bare asyncpg + hmac handler (the floor), "
        "C = tutorial-style FastAPI + SQLAlchemy + Mangum app (the peer).",
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
    lines += ["", "Zipped API bundle: "]
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
