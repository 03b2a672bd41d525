"""A function whose after-restore hook fails: what the runtime tells Lambda then (only in
tests/lambda_target/test_snapstart_on_target.py; never shipped)."""

from __future__ import annotations

from typing import Any

from snapshot_restore_py import register_after_restore

MESSAGE = "the after-restore hook could not make its state again"


@register_after_restore
def _make_state_again() -> None:
    raise RuntimeError(MESSAGE)


def handler(event: Any, context: Any) -> dict[str, Any]:
    raise AssertionError("a container whose restore failed got an invocation")
