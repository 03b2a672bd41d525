"""The interpreter every measured process runs under: Lambda's, CPython 3.13.

Found as the bundler finds the one that compiles the Lambda bundle's bytecode
(`infra_cdk.bundling.find_python`: LAMBDA_BUNDLE_PYTHON, this Python if it is 3.13,
python3.13 on PATH, a pyenv 3.13, a uv-installed 3.13). Without one the benchmark stops:
figures measured on another version would say nothing about what Lambda runs.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

from infra_cdk.bundling import LAMBDA_TARGET, BundlingError, find_python


class InterpreterMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: str  # the full version, e.g. "3.13.0"


def lambda_interpreter() -> Interpreter:
    version = LAMBDA_TARGET.python_version
    try:
        path = find_python(version)
    except BundlingError:
        raise InterpreterMissing(
            f"make bench measures under CPython {version}, the version Lambda's python{version} "
            f"runtime runs, and found none. Install one and run it again: "
            f"`make install && .tools/bin/uv python install {version}`, Debian 13's "
            f"`apt-get install python{version}`, or python{version} on PATH, or set "
            f"LAMBDA_BUNDLE_PYTHON=/path/to/python{version}. It does not fall back to "
            "another version."
        ) from None
    completed = subprocess.run(
        [path, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return Interpreter(path=path, version=completed.stdout.strip())
