"""Telling "the database is unreachable" apart from a bug.

Connection refused, a server restarting, a proxy that dropped us, a query that
hit the client's command timeout or the server's statement timeout, or AWS
unreachable while fetching the credentials to log in with (botocore chains the
socket's OSError) all mean "try again shortly" (503), not a 500.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

# SQLSTATE classes: 08 connection exception, 57P operator intervention
# (shutdown, cannot connect now), 57014 query canceled (the API role's
# statement_timeout, migration 0005), 53300 too many connections.
_UNAVAILABLE_SQLSTATES = ("08", "57P", "57014", "53300")


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def is_database_unavailable(exc: BaseException) -> bool:
    for error in _causes(exc):
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, (OSError, TimeoutError)):
            return True
        sqlstate = getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
            return True
        module = type(error).__module__
        if module.startswith("asyncpg") and type(error).__name__ in (
            "ConnectionDoesNotExistError",
            "InterfaceError",
            "ConnectionFailureError",
            "InternalClientError",
        ):
            return True
    return False
