"""A sanity check, not a target: A's and C's cold starts from aarch64 bundles under qemu.

Through the harness of `make target-test` (tests/lambda_target): Debian's arm64 CPython
3.13 and Lambda's runtime client (awslambdaric) under `qemu-aarch64-static -cpu
neoverse-n1`. A runs from the API bundle exactly as `cdk deploy` builds it; C from the
same locked aarch64 wheels as `pip install --target` leaves them, with the peers,
precompiled by 3.13 the same way. qemu's speed says little about Graviton's; the ratio
is the figure to read. A and C take turns.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.bundles import build_peers
from infra_cdk.bundling import LAMBDA_TARGET, compile_bytecode, find_python
from tests.lambda_target.arm64_runtime import missing_tools, prepare_target_runtime
from tests.lambda_target.function_process import QEMU_CPU, FunctionConfig, running_function

MEMORY_MB = 1024
INVOKE_TIMEOUT_S = 300.0  # qemu on a shared machine; a bound, not a measurement
HANDLERS = {
    "A": "lambda_app.handlers.api.handler",
    "C": "benchmarks.peers.tutorial.handler",
}


def _peers_bundle(out: Path) -> Path:
    """C's aarch64 folder: the locked aarch64 wheels and the peers, precompiled by 3.13."""
    python = find_python(LAMBDA_TARGET.python_version)
    build_peers(out, python=python, target=LAMBDA_TARGET)
    compile_bytecode(python=python, target=LAMBDA_TARGET, out=out)
    return out


def _readable(path: Path) -> None:
    """The function runs as an unprivileged user (function_process.py): let it read."""
    for entry in [path, *path.rglob("*")]:
        if not entry.is_symlink():
            entry.chmod(entry.stat().st_mode | 0o444 | (0o111 if entry.is_dir() else 0))


def measure_arm64_cold_starts(
    *, api_bundle: Path, environment: dict[str, str], event: dict[str, Any], runs: int
) -> dict[str, Any]:
    """{"status": "ok", "A": {...}, "C": {...}, "A/C": ...} or {"status": "skipped", ...}."""
    missing = missing_tools()
    if missing:
        return {"status": "skipped", "reason": "; ".join(missing)}
    runtime = prepare_target_runtime()
    workspace = Path(tempfile.mkdtemp(prefix="bench-arm64-"))
    try:
        bundles = {"A": workspace / "api", "C": _peers_bundle(workspace / "peers")}
        shutil.copytree(api_bundle, bundles["A"], symlinks=True)
        _readable(workspace)
        samples: dict[str, list[float]] = {key: [] for key in HANDLERS}
        inits: dict[str, list[float]] = {key: [] for key in HANDLERS}
        for number in range(runs):
            for key, handler in HANDLERS.items():
                config = FunctionConfig(
                    name=f"bench-{key.lower()}",
                    handler=handler,
                    memory_mb=MEMORY_MB,
                    timeout_s=INVOKE_TIMEOUT_S,
                    environment=environment,
                )
                logs = workspace / "logs" / f"{key}-{number}"
                with running_function(bundles[key], runtime, config, logs=logs) as function:
                    first = function.invoke(event)
                    init_s = function.init_duration_s
                status = first.json().get("statusCode") if first.kind == "response" else None
                if status != 200:
                    raise RuntimeError(
                        f"{key} under qemu answered {first.kind} {first.body[-2000:]!r}"
                    )
                inits[key].append(init_s * 1000)
                samples[key].append((init_s + first.duration_s) * 1000)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    result: dict[str, Any] = {"status": "ok", "qemu_cpu": QEMU_CPU, "processes": runs}
    for key in HANDLERS:
        result[key] = {
            "cold_median_ms": round(statistics.median(samples[key])),
            "init_median_ms": round(statistics.median(inits[key])),
        }
    result["A/C"] = round(result["A"]["cold_median_ms"] / result["C"]["cold_median_ms"], 3)
    return result
