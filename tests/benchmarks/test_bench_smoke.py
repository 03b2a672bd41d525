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
from benchmarks.bundles import SMOKE_CACHE_ENTRIES, _forget_old_entries
from benchmarks.importtime import parse_importtime, top_by_cumulative
from benchmarks.report import percentile

pytestmark = pytest.mark.slow

HANDLER_KEYS = {"A", "B", "C"}
COLD_KEYS = HANDLER_KEYS | {"S"}  # S: the stack alone, the cold-start floor
WARM_KEYS = HANDLER_KEYS | {"C-null"}  # C-null: C with NullPool


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


def test_the_smoke_cache_keeps_the_recent_entries_and_builds_under_way(tmp_path: Path) -> None:
    # given: more complete entries than kept, a build under way and one killed days ago
    day = 24 * 3600
    entries = [tmp_path / f"entry{n}" for n in range(SMOKE_CACHE_ENTRIES + 2)]
    for age, entry in enumerate(reversed(entries)):  # entries[-1] is the most recent
        (entry / "api").mkdir(parents=True)
        os.utime(entry, (0, 1_000_000 + day - age))
    running, killed = tmp_path / "entry9.abc", tmp_path / "entry8.def"
    running.mkdir()
    killed.mkdir()
    os.utime(killed, (0, killed.stat().st_mtime - 2 * day))

    # when
    _forget_old_entries(tmp_path)

    # then
    kept = {path.name for path in tmp_path.iterdir()}
    assert kept == {entry.name for entry in entries[-SMOKE_CACHE_ENTRIES:]} | {running.name}


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
    assert "warm processes" in result["method"]["smoke"]  # says where its cold figures come from
    assert result["machine"]["python"].startswith("3.13.")  # Lambda's interpreter, not ours
    pyc_files = result["method"]["precompiled_pyc_files"]
    assert set(pyc_files) == {"api", "peers"} and min(pyc_files.values()) > 0
    local = result["local_bundle"]
    assert local["target"].startswith("cp313 ") and local["unzipped_mb"] > 0
    # A ran from the folder the recipe built, not from this checkout
    assert result["warm"]["A"]["handler_file"] == str(
        Path(local["path"], "lambda_app", "handlers", "api.py")
    )
    cold = result["cold_start"]["precompiled"]
    assert set(cold) == COLD_KEYS
    for figures in cold.values():
        assert figures["processes"] == 1
        assert figures["median_ms"] > 0 and figures["peak_rss_median_mib"] > 0
    for figures in result["warm"].values():
        assert figures["invocations"] == 5 and figures["failures"] == 0
        assert len(figures["rounds"]) == 1
        assert figures["p99_ms"] >= figures["p50_ms"] > 0
        assert figures["peak_rss_mib"] > 0
    assert set(result["warm"]) == WARM_KEYS
    floors = result["references"]
    assert floors["cold_precompiled"]["S_ms"] > 0 and floors["cold_precompiled"]["S/C"] > 0
    assert floors["peak_rss_cold"]["S/C"] > 0
    assert floors["warm_p50"]["C-null/B"] > 0 and floors["warm_p50"]["A/C-null"] > 0
    for metric in ("cold_precompiled_ms", "warm_p50_ms", "warm_p99_ms", "peak_rss_mib"):
        assert set(result["figures"][metric]) == HANDLER_KEYS
        assert result["ratios"][metric]["A/B"] > 0 and result["ratios"][metric]["A/C"] > 0
    kept = result["kept_connection"]
    for pool in ("null", "single"):
        assert kept[pool]["invocations"] == 5 and kept[pool]["failures"] == 0
    assert kept["null/single p50"] > 0
    costs = result["init_cost"]
    assert costs["A"]["usd_per_million"] > 0 and costs["C"]["usd_per_million"] > 0
    top = result["import_time_top10"]
    assert len(top) == 10 and top[0]["module"] == "lambda_app.handlers.api"
    assert result["bundle"]["status"] == "skipped" and result["arm64"]["status"] == "skipped"
    assert len(result["targets"]) == 5
    assert all(isinstance(target["met"], bool) for target in result["targets"])
    assert result["machine"]["nproc"] >= 1


def test_no_python313_stops_the_benchmark_with_how_to_install_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: no CPython 3.13 anywhere the bundler looks
    monkeypatch.setenv("LAMBDA_BUNDLE_PYTHON", "/nonexistent/python3.13")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("PYENV_ROOT", "/nonexistent")

    # when
    exit_code = runner.main(["--smoke"])

    # then: it stops before any work, naming how to get one; no fallback to this Python
    assert exit_code == 2
    message = capsys.readouterr().err
    assert "LAMBDA_BUNDLE_PYTHON" in message and "uv python install 3.13" in message
    assert "does not fall back" in message
