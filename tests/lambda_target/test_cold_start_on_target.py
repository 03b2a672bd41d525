"""The API function's cold start on the target, with the bundle's bytecode and without it.

Without its `__pycache__` folders (still read-only, as /var/task is) the function must
compile every module in memory on every cold start, and must still work. The times are
printed at the end of the run, never asserted: the machine is shared and qemu's speed
says little about Graviton's; their ratio is the figure to read.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.lambda_events import HttpRequest, http_api_v2, parse_result
from tests.lambda_target.bundles import Target
from tests.lambda_target.function_process import FunctionConfig, running_function
from tests.lambda_target.observe import ColdStarts, file_list

pytestmark = pytest.mark.slow


def test_api_bundle_serves_with_and_without_its_bytecode_and_writes_nothing(
    target: Target,
    api_function: FunctionConfig,
    api_database_url_for_tests: str,
    logs: Path,
    cold_starts: ColdStarts,
) -> None:
    # given: the shipped bundle, and a read-only copy without any bytecode
    shipped = target.bundle("api")
    source_only = target.copy_of("api", "api-without-bytecode", leave_out=("__pycache__",))
    assert not list(source_only.rglob("*.pyc"))
    config = api_function.with_environment(DATABASE_URL=api_database_url_for_tests)

    for label, bundle in (("bytecode", shipped), ("no bytecode", source_only)):
        before = file_list(bundle)
        # when: a cold container gets its first request
        with running_function(bundle, target.runtime, config, logs=logs / label) as function:
            first = function.invoke(http_api_v2(HttpRequest("GET", "/api/health")))
            init_s = function.init_duration_s

        # then: it answers, and Python wrote nothing into the bundle (it could not)
        assert first.kind == "response", (label, first.body, function.stdout[-2000:])
        health = parse_result(first.json(), first.request_id)
        assert (health.status, health.json()) == (200, {"status": "ok"}), label
        assert file_list(bundle) == before, label
        cold_starts.runs[label] = (init_s, first.duration_s)
