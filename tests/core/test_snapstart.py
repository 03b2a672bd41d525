"""Where Lambda takes a snapshot, the SnapStart hooks must be registered, or init fails.

Lambda's Python runtime ships `snapshot_restore_py`. Anywhere else (tests, `make run`, an
on-demand container) its absence just means nothing is ever restored; under SnapStart it
would mean every after-restore hook (`random`'s reseed, multiprocessing's key) silently
never runs in any restored container.
"""

from __future__ import annotations

from tests.fixtures.fresh_interpreter import run_python

# In a fresh interpreter: the runtime's hooks module missing, the given initialization type.
IMPORT_WITHOUT_THE_HOOKS_MODULE = """
import os
import sys

os.environ["AWS_LAMBDA_INITIALIZATION_TYPE"] = {initialization_type!r}
sys.modules["snapshot_restore_py"] = None  # as if the runtime lacked it
import lambda_app.core.snapstart
"""


def test_a_missing_hooks_module_fails_init_when_lambda_takes_a_snapshot() -> None:
    # when: init runs for a snapshot (publishing a SnapStart version) without the module
    result = run_python(IMPORT_WITHOUT_THE_HOOKS_MODULE.format(initialization_type="snap-start"))

    # then: the import fails, saying why (Lambda reports it as the init error)
    assert result.returncode != 0
    assert "snapshot_restore_py" in result.stderr
    assert "AWS_LAMBDA_INITIALIZATION_TYPE=snap-start" in result.stderr, result.stderr[-2000:]


def test_a_missing_hooks_module_is_no_hook_due_on_demand() -> None:
    # when: an on-demand container (or any run outside Lambda) imports it without the module
    result = run_python(IMPORT_WITHOUT_THE_HOOKS_MODULE.format(initialization_type="on-demand"))

    # then: nothing will ever be restored, so registering is a no-op
    assert result.returncode == 0, result.stderr[-2000:]
