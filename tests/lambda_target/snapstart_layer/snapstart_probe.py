"""The API's handler, with SnapStart hooks of a probe's around the app's own: on the
function's path as a layer would be (only in tests/lambda_target/test_snapstart_on_target.py;
never shipped). Each probe hook prints one JSON line saying what it saw.

Lambda runs the before-snapshot hooks last-registered first and the after-restore hooks in
registration order, so the order of the registrations below is the point:
1. `_at_snapshot`, registered before the app's: runs after all of them, just before the
   snapshot;
2. the app's hooks, registered as `lambda_app.handlers.api` is imported;
3. `_keep_a_connection`, registered after them: runs before them, as a priming request
   would, so that the app's hook has a kept connection (DB_POOL=single) to close;
4. `_after_restore`, registered after the app's: runs after all of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random

from snapshot_restore_py import register_after_restore, register_before_snapshot


def _digest(value: object) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def _say(moment: str, **facts: object) -> None:
    print(json.dumps({"snapstart_probe": moment, **facts}), flush=True)


def _unique_state() -> dict[str, str]:
    import multiprocessing  # its key is drawn at import: imported here if nothing did yet

    return {
        "random": _digest(random.getstate()),
        "authkey": _digest(bytes(multiprocessing.current_process().authkey)),
    }


@register_before_snapshot
def _at_snapshot() -> None:
    from lambda_app.models.base import Base

    configured = all(mapper.configured for mapper in Base.registry.mappers)
    _say("snapshot", mappers_configured=configured, **_unique_state())


from lambda_app.handlers.api import handler  # noqa: E402  # the app's hooks, after the probe's first

__all__ = ["handler"]


@register_before_snapshot
def _keep_a_connection() -> None:
    from sqlalchemy import text

    from lambda_app.db.engine import get_engine

    async def select_one() -> None:
        async with get_engine().connect() as conn:
            await conn.execute(text("SELECT 1"))

    # The container's loop, which the handler made current; idle, as the runtime leaves it.
    asyncio.get_event_loop().run_until_complete(select_one())
    _say("kept a connection")


@register_after_restore
def _after_restore() -> None:
    _say("restored", **_unique_state())
