"""Readiness: the database answers, as the API's role, with a schema this code can use.

One statement reads every column the ORM maps, of every table, with `LIMIT 0`: PostgreSQL
checks that each exists and that the role may read it, and reads no row. It runs as any
GET's statement does (a `reading()` session: no transaction, nothing that pins an RDS
Proxy session), so it also proves the path every request takes.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from lambda_app.db.session import reading
from lambda_app.health.errors import SchemaUnusable
from lambda_app.models import Base

logger = logging.getLogger(__name__)

# SQLSTATE class 42, "syntax error or access rule violation": a table or column missing
# (42P01, 42703), a privilege missing (42501).
SCHEMA_ERROR_CLASS = "42"

# Built once: every mapped table, each as `EXISTS (SELECT <its columns> ... LIMIT 0)`.
EVERY_MAPPED_COLUMN = select(
    *(select(table).limit(0).exists() for table in Base.metadata.sorted_tables)
)


async def check_ready() -> None:
    """Raise `SchemaUnusable` if the role can't read what the code maps; a database that
    does not answer raises what every request's would (a 503 as well)."""
    try:
        async with reading() as session:
            await session.execute(EVERY_MAPPED_COLUMN)
    except DBAPIError as exc:
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        if not sqlstate.startswith(SCHEMA_ERROR_CLASS):
            raise
        # The server's message names the table or column, never a row's data.
        logger.warning(
            "database schema not usable",
            extra={"fields": {"sqlstate": sqlstate, "error": str(exc.orig)}},
        )
        raise SchemaUnusable() from exc
