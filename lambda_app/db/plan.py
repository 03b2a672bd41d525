"""How the engine opens a connection: the leaf every credential source returns.

A `ConnectionPlan` is a URL (for SQLAlchemy's dialect and for display: it never
carries a password on the AWS sources), driver-level connect arguments, and
optionally an async creator that dials itself, adding fresh credentials (an IAM
token, a rotated password) to every new connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import URL

# Wall-clock time: a token's validity is judged by AWS on the wall clock, and the
# monotonic clock is not reliable across a Lambda freeze or snapshot restore.
Clock = Callable[[], float]

# Opens a raw asyncpg connection. It receives the driver-level connect arguments
# (statement cache, timeouts, server_settings, ssl) as keywords and adds the
# credentials itself, fresh for every connection.
AsyncCreator = Callable[..., Awaitable[Any]]


class DatabaseNotConfigured(RuntimeError):
    pass


@dataclass(frozen=True)
class ConnectionPlan:
    url: URL
    connect_args: dict[str, Any] = field(default_factory=dict)
    # None: SQLAlchemy connects from `url` and `connect_args` (a DATABASE_URL).
    async_creator: AsyncCreator | None = None
