"""`make bench` still runs: the whole benchmark with tiny counts, checked for its output.

Only the shape and the honesty checks of the result are asserted, never a duration:
timings on a shared machine say nothing about correctness.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks import runner
from benchmarks.importtime import parse_importtime, top_by_cumulative
from benchmarks.report import percentile

pytestmark = pytest.mark.slow

HANDLER_KEYS = {"A", "B", "C"}


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0


def test_importtime_lines_are_parsed() -> None:
    stderr = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       120 |        120 |   json.decoder\n"
        "import time:       300 |        420 | json\n"
    )
    timings = parse_importtime(stderr)
    assert [t.module for t in top_by_cumulative(timings, 1)] == ["json"]
    assert timings[0].self_us == 120


def test_smoke_run_writes_every_figure(
    admin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a database of its own, so a concurrent `make bench` or test run is untouched,
    # made on the test server as its admin (the session's DATABASE_URL is the API's role)
    monkeypatch.setenv("DATABASE_URL", admin_url)
    database = f"lambda_app_bench_smoke{os.environ.get('TEST_DATABASE_SUFFIX', '')}"
    output = tmp_path / "latest.json"

    # when
    exit_code = runner.main(["--smoke", "--database", database, "--output", str(output)])

    # then
    assert exit_code == 0
    result = json.loads(output.read_text())
    assert result["method"]["full_run"] is False  # smoke counts never pass for a real run
    pyc_files = result["method"]["precompiled_pyc_files"]
    assert set(pyc_files) == {"api", "peers"} and min(pyc_files.values()) > 0
    for variant in ("no-bytecode", "precompiled"):
        cold = result["cold_start"][variant]
        assert set(cold) == HANDLER_KEYS
        for figures in cold.values():
            assert figures["processes"] == 1
            assert figures["median_ms"] > 0 and figures["peak_rss_median_mib"] > 0
    for figures in result["warm"].values():
        assert figures["invocations"] == 20 and figures["failures"] == 0
        assert len(figures["rounds"]) == 1
        assert figures["p99_ms"] >= figures["p50_ms"] > 0
        assert figures["peak_rss_mib"] > 0
    assert set(result["warm"]) == HANDLER_KEYS
    for metric in (
        "cold_no_bytecode_ms",
        "cold_precompiled_ms",
        "warm_p50_ms",
        "warm_p99_ms",
        "peak_rss_mib",
    ):
        assert set(result["figures"][metric]) == HANDLER_KEYS
        assert result["ratios"][metric]["A/B"] > 0 and result["ratios"][metric]["A/C"] > 0
    top = result["import_time_top10"]
    assert len(top) == 10 and top[0]["module"] == "lambda_app.handlers.api"
    assert result["bundle"]["status"] == "skipped"
    assert len(result["targets"]) == 6
    assert all(isinstance(target["met"], bool) for target in result["targets"])
    assert result["machine"]["nproc"] >= 1 and result["machine"]["python"]
