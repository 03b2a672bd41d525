"""Which modules the API handler's import spends its time in (`python -X importtime`)."""

from __future__ import annotations

import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ImportTiming:
    module: str
    self_us: int
    cumulative_us: int


def parse_importtime(stderr: str) -> list[ImportTiming]:
    """Lines look like `import time:       123 |        456 |   package.module`."""
    timings = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|", 2)
        timings.append(ImportTiming(name.strip(), int(self_us), int(cumulative_us)))
    return timings


def profile_imports(
    module: str, *, python: str, bundle: Path, env: dict[str, str], runs: int
) -> list[ImportTiming]:
    """Per module, the median over `runs` fresh processes of importing `module`."""
    samples: dict[str, list[ImportTiming]] = {}
    for _ in range(runs):
        completed = subprocess.run(
            [python, "-S", "-X", "importtime", "-c", f"import {module}"],
            cwd=bundle,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"importing {module} failed:\n{completed.stderr[-4000:]}")
        for timing in parse_importtime(completed.stderr):
            samples.setdefault(timing.module, []).append(timing)
    return [
        ImportTiming(
            name,
            int(statistics.median(t.self_us for t in timings)),
            int(statistics.median(t.cumulative_us for t in timings)),
        )
        for name, timings in samples.items()
    ]


def top_by_cumulative(timings: list[ImportTiming], count: int = 10) -> list[ImportTiming]:
    return sorted(timings, key=lambda t: t.cumulative_us, reverse=True)[:count]


def top_by_self(timings: list[ImportTiming], count: int = 10) -> list[ImportTiming]:
    return sorted(timings, key=lambda t: t.self_us, reverse=True)[:count]
