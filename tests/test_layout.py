"""Rules of the tree a reader relies on: small modules, tests that stand alone, one set of
folders for the tools."""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 300


def test_no_module_of_the_app_is_over_300_lines() -> None:
    too_long = {
        str(path.relative_to(ROOT)): lines
        for path in (ROOT / "lambda_app").rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert too_long == {}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_test_module_imports_another() -> None:
    # Shared helpers live in tests/fixtures/ (and a package's own helper modules);
    # a test module that imports another one runs or breaks with it.
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name
            for name in _imported_modules(path)
            if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")
        )
        for path in (ROOT / "tests").rglob("test_*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_make_format_formats_every_folder_make_lint_checks() -> None:
    def ruff_paths(target: str) -> dict[str, set[str]]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
        planned = subprocess.run(
            ["make", "--dry-run", "--no-print-directory", target],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        found = {}
        for line in planned.splitlines():
            words = line.split()
            if words and words[0].endswith("/ruff"):
                found[words[1]] = {word for word in words[2:] if not word.startswith("-")}
        return found

    lint, format_ = ruff_paths("lint"), ruff_paths("format")
    assert set(lint) == set(format_) == {"check", "format"}
    assert format_ == lint
