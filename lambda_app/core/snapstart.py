"""SnapStart: state that must be made anew in every container restored from one snapshot.

With SnapStart, Lambda runs init once, snapshots the memory and restores every new
container from that snapshot. Whatever init made that must be unique (random
tokens, counters, `random`'s seed) would be the same in all of them. Such state is
made lazily, on first use, and reset by an after-restore hook registered here. What
must not be in a snapshot at all (an open connection) is closed by a before-snapshot hook.

Lambda's Python runtime ships `snapshot_restore_py` and runs its hooks; outside
Lambda (tests, `make run`, a container elsewhere), and in an on-demand container, nothing
is ever restored, so a missing module just means no hook will ever be due. Where Lambda
takes a snapshot (`AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`) a missing module fails the
import: every restored container would otherwise go without its hooks, silently, and
publishing the version fails instead.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable

try:
    from snapshot_restore_py import register_after_restore, register_before_snapshot
except ModuleNotFoundError as missing:  # not on Lambda's runtime: there is no snapshot to hook
    if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
        raise ModuleNotFoundError(
            "snapshot_restore_py is missing with AWS_LAMBDA_INITIALIZATION_TYPE=snap-start:"
            " no SnapStart hook could be registered, and no restored container would run one",
            name=missing.name,
        ) from missing

    def register_after_restore(func: Callable[[], object]) -> Callable[[], object]:
        return func

    def register_before_snapshot(func: Callable[[], object]) -> Callable[[], object]:
        return func


def before_snapshot(hook: Callable[[], None]) -> Callable[[], None]:
    """Run `hook` once, after init, before Lambda snapshots the memory."""
    register_before_snapshot(hook)
    return hook


def after_restore(hook: Callable[[], None]) -> Callable[[], None]:
    """Run `hook` in each container restored from a snapshot, before its first request."""
    register_after_restore(hook)
    return hook


# `random` seeds itself once, at import: every restored container would draw the same
# numbers. Nothing here uses it for anything secret, but a library might count on
# it to differ between containers (jitter, sampling).
after_restore(random.seed)


def _new_multiprocessing_authkey() -> None:
    # multiprocessing draws its processes' authentication key once, at import, and with
    # SnapStart boto3 is imported before the snapshot (it imports multiprocessing through
    # s3transfer). Nothing here uses the key; a library that did would count on it being
    # secret, hence its own in every container.
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is not None:
        multiprocessing.current_process().authkey = os.urandom(32)


after_restore(_new_multiprocessing_authkey)
