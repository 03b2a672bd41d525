"""S, the stack alone: the libraries A and C both import, and nothing else.

No app, no route, no settings, no request: a fresh process imports these modules (the
child measures the import only) and stops. Its cold start is what any handler built on
FastAPI, SQLAlchemy's asyncio ORM, asyncpg, PyJWT and Mangum pays before its own first
line runs, so A minus S is what the product's own code and its first request cost.
"""

from __future__ import annotations

import asyncpg  # noqa: F401
import fastapi
import fastapi.security  # noqa: F401
import jwt  # noqa: F401
import mangum  # noqa: F401
import pydantic  # noqa: F401
import sqlalchemy.dialects.postgresql.asyncpg
import sqlalchemy.ext.asyncio
import sqlalchemy.orm  # noqa: F401
