"""What a function process did to and with its bundle, read from outside it.

`python -v` reports each module's code object as loaded from a `.pyc` (a quoted path),
or compiled from source (an unquoted one), and every attempt to write bytecode
("created ..." or "could not create ..."): see importlib._bootstrap_external.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.lambda_target.function_process import QEMU_CPU

CACHE_TAG = "cpython-313"
_FROM_BYTECODE = re.compile(r"^# code object from '(?P<path>[^']+)'$")
_FROM_SOURCE = re.compile(r"^# code object from (?P<path>[^'].*)$")
_IMPORTED = re.compile(r"^import '(?P<name>[\w.]+)' # ")
_EXTENSION = re.compile(r"^# extension module '[\w.]+' loaded from '(?P<path>[^']+)'$")
_BYTECODE_WRITES = ("# created ", "# could not create ")
_BYTECODE_REJECTED = ("# bytecode is stale for ", "# bad magic number in ")


def file_list(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder`: size and modification time, by relative path."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@dataclass(frozen=True)
class VerboseImports:
    """What `python -v` said about imports."""

    from_bytecode: set[str]
    from_source: set[str]
    extensions: set[str]
    modules: set[str]
    bytecode_writes: list[str]
    bytecode_rejected: list[str]

    @classmethod
    def parse(cls, stderr: str) -> VerboseImports:
        lines = stderr.splitlines()

        def matching(pattern: re.Pattern[str], group: str) -> set[str]:
            return {m[group] for line in lines if (m := pattern.match(line))}

        return cls(
            from_bytecode=matching(_FROM_BYTECODE, "path"),
            from_source=matching(_FROM_SOURCE, "path"),
            extensions=matching(_EXTENSION, "path"),
            modules=matching(_IMPORTED, "name"),
            bytecode_writes=[line for line in lines if line.startswith(_BYTECODE_WRITES)],
            bytecode_rejected=[line for line in lines if line.startswith(_BYTECODE_REJECTED)],
        )

    def loaded_paths(self) -> set[str]:
        return self.from_bytecode | self.from_source | self.extensions


def shipped_bytecode(module: str, *, bundle: Path) -> set[str]:
    """Where the bundle's compiled `module` is: a module's own .pyc, or its package's."""
    parts = module.split(".")
    folder = "/".join([str(bundle), *parts[:-1]])
    package = "/".join([str(bundle), *parts])
    return {
        f"{folder}/__pycache__/{parts[-1]}.{CACHE_TAG}.pyc",
        f"{package}/__pycache__/__init__.{CACHE_TAG}.pyc",
    }


def json_lines(output: str) -> list[dict[str, Any]]:
    """The lines of `output` that are JSON objects (the app logs one per line)."""
    records = []
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


@dataclass
class ColdStarts:
    """Cold starts of the API function, printed at the end of the run: under qemu the
    times say little about Graviton, their ratio is the figure to read."""

    runs: dict[str, tuple[float, float]] = field(default_factory=dict)  # init, first response

    def summary(self) -> str | None:
        if not {"bytecode", "no bytecode"} <= self.runs.keys():
            return None
        (init, first), (init_src, first_src) = self.runs["bytecode"], self.runs["no bytecode"]
        total, total_src = init + first, init_src + first_src
        return (
            f"aarch64 API cold start (qemu {QEMU_CPU}, {os.cpu_count()} host cores): "
            f"shipped bytecode init {init:.2f} s + first response {first:.2f} s = {total:.2f} s; "
            f"without bytecode init {init_src:.2f} s + first response {first_src:.2f} s = "
            f"{total_src:.2f} s; without/with = {total_src / total:.2f}x"
        )
