"""Prepared-statement names no other client of the proxy will ever use.

Behind a transaction-pooling proxy (RDS Proxy, PgBouncer) clients share server
connections, so a name must differ across every container and process, not only
within one connection: a random token per process (128 bits, as a uuid4 has) and
a counter.

The token is made on first use, never at import: with SnapStart an import-time
token would be frozen into the snapshot and shared by every restored container.
It is made again after a restore (the hook) and in a forked child (a server that
imports the app and then forks workers).
"""

from __future__ import annotations

import itertools
import os
import secrets

from lambda_app.core.snapstart import after_restore

_token: str | None = None
_numbers = itertools.count()


@after_restore
def forget_token() -> None:
    global _token, _numbers
    _token = None
    _numbers = itertools.count()


os.register_at_fork(after_in_child=forget_token)


def unique_statement_name() -> str:
    global _token
    if _token is None:
        _token = secrets.token_hex(16)
    return f"__asyncpg_{_token}_{next(_numbers)}__"
