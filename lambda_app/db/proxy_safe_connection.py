"""An asyncpg connection that never changes a session setting on its own.

The first time a connection meets a type it has no codec for (an enum, a domain,
a composite), asyncpg looks it up in the catalog. Since 0.29 it wraps that lookup
in `SELECT current_setting('jit'), set_config('jit', 'off', false)` and a second
`set_config` to restore the value, whenever the server is PostgreSQL 11 or later
(whatever the server's `jit` actually is). RDS Proxy pins a client session to its
server connection on any `set_config`, and with NullPool every request is a new
session: every request that touched an enum column would pin a connection of the
proxy for as long as it stays open.

asyncpg decides per connection from its `_server_caps.jit` flag, the same switch it
clears itself for servers without JIT (Redshift, CockroachDB). `ProxySafeConnection`
clears it right after asyncpg sets it: the lookup then runs with the server's own
`jit` setting and no statement around it. Two fewer round trips, too.

The cost: the lookup query's planned cost is above PostgreSQL's default
`jit_above_cost`, so a server with JIT available and `jit = on` compiles it, which
takes hundreds of milliseconds (MagicStack/asyncpg#530, #1082). It runs once per
connection that meets an unknown type, so with NullPool once per such request. So
the API's role has `jit = off` as its server-side default (migration 0002): no client
statement, hence no pinning, and the app's short indexed queries never gain from JIT.

`tests/reliability/test_pinning.py` checks both halves: that stock asyncpg still
makes the `set_config` calls (else this module can go) and that this class makes none.
"""

from __future__ import annotations

from typing import Any

import asyncpg


class ProxySafeConnection(asyncpg.Connection):  # type: ignore[misc]  # asyncpg is untyped
    """Pass as `connection_class=` to `asyncpg.connect` (see `lambda_app.db.engine`)."""

    __slots__ = ()  # like asyncpg's own Connection: no per-instance dict

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # asyncpg skips the jit toggle around type introspection when this is False.
        # (The slot is asyncpg's; mypy can't see it through the untyped base class.)
        self._server_caps = self._server_caps._replace(jit=False)  # type: ignore[misc,has-type]
