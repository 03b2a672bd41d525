"""The shipped aarch64 bundles, run under Lambda's own runtime client in qemu.

Once per session: both bundles built exactly as `cdk deploy` builds them (LAMBDA_TARGET:
cp313, manylinux_2_28 aarch64, stripped, bytecode for /var/task) and made read-only,
beside the cached arm64 CPython and runtime folder (arm64_runtime.py). Every function
process runs as an unprivileged user (function_process.py).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lambda_target import deployed
from tests.lambda_target.arm64_runtime import missing_tools, remove_tree
from tests.lambda_target.bundles import Target, prepare_target
from tests.lambda_target.function_process import FunctionConfig
from tests.lambda_target.observe import ColdStarts

HERE = Path(__file__).parent
_COLD_STARTS = ColdStarts()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Stop before any test runs when a tool is missing: a skip would read as a pass."""
    if not any(HERE in Path(item.path).parents for item in items):
        return
    missing = missing_tools()
    if missing:
        raise pytest.UsageError(
            "the aarch64 Lambda bundle tests (tests/lambda_target) need:\n  " + "\n  ".join(missing)
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    line = _COLD_STARTS.summary()
    if line:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def cold_starts() -> ColdStarts:
    return _COLD_STARTS


@pytest.fixture(scope="session")
def workspace() -> Iterator[Path]:
    """Bundles and logs for this session. Not pytest's tmp_path: its folders are private
    to root, and the functions run as another user."""
    path = Path(tempfile.mkdtemp(prefix="lambda-target-"))
    path.chmod(0o755)
    yield path
    remove_tree(path)


@pytest.fixture(scope="session")
def target(workspace: Path) -> Target:
    return prepare_target(workspace)


@pytest.fixture(scope="session")
def api_function() -> FunctionConfig:
    return deployed.api_function()


@pytest.fixture(scope="session")
def migration_function() -> FunctionConfig:
    return deployed.migration_function()


@pytest.fixture
def fresh_database_url(admin_url: str) -> Iterator[str]:
    """An empty database (no schema at all), dropped afterwards."""
    from lambda_app.devtools.database import (
        database_url,
        drop_database,
        ensure_database,
        test_database_name,
    )

    name = f"{test_database_name()}_target_migrate"
    asyncio.run(drop_database(admin_url, name))
    asyncio.run(ensure_database(admin_url, name))
    yield database_url(admin_url, name)
    asyncio.run(drop_database(admin_url, name))


@pytest.fixture
def logs(workspace: Path, request: pytest.FixtureRequest) -> Path:
    """Where the test's function processes write their stdout and stderr."""
    path = workspace / "logs" / request.node.name
    path.mkdir(parents=True)
    return path
