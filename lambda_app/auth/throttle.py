"""Failed-login limits per login name, kept in PostgreSQL so every container shares them.

Checking and clearing happen in the request's own session. A failure is written
in a short transaction of its own: the login request itself fails (and rolls
back), but its failure must still count.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Table, case, delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.core import metrics
from lambda_app.core.settings import ApiSettings
from lambda_app.db.session import transaction_of_its_own
from lambda_app.models import LoginThrottle

LOGIN_KEY_MAX = 320


def throttle_key(login: str) -> str:
    # NUL can't go into a PostgreSQL text parameter; "bob\0" counts as "bob".
    return login.replace("\x00", "").strip().lower()[:LOGIN_KEY_MAX]


async def lockout_seconds(
    session: AsyncSession, key: str, settings: ApiSettings
) -> tuple[int, bool]:
    """(seconds the login is still locked out, whether a counter row exists)."""
    row = await session.scalar(select(LoginThrottle).where(LoginThrottle.login == key))
    if row is None:
        return 0, False
    if row.failures < settings.login_max_failures:
        return 0, True
    window_end = row.window_started_at + dt.timedelta(seconds=settings.login_failure_window_seconds)
    remaining = (window_end - dt.datetime.now(dt.UTC)).total_seconds()
    return (int(remaining) + 1 if remaining > 0 else 0), True


async def record_failure(request_session: AsyncSession, key: str, settings: ApiSettings) -> None:
    """Count a failed login, committed at once: the request that failed rolls back."""
    now = dt.datetime.now(dt.UTC)
    window_start = now - dt.timedelta(seconds=settings.login_failure_window_seconds)
    table = LoginThrottle.__table__
    assert isinstance(table, Table)
    expired = table.c.window_started_at < window_start
    stmt = (
        insert(table)
        .values(login=key, failures=1, window_started_at=now)
        .on_conflict_do_update(
            index_elements=[table.c.login],
            set_={
                # A failure after the window has passed starts a new count.
                "failures": case((expired, 1), else_=table.c.failures + 1),
                "window_started_at": case((expired, now), else_=table.c.window_started_at),
            },
        )
        .returning(table.c.failures)
    )
    async with transaction_of_its_own(request_session) as session:
        failures = await session.scalar(stmt)
    if failures == settings.login_max_failures:  # this failure locked the login out
        metrics.count(metrics.LOGIN_LOCKOUTS, stage=settings.environment)


async def clear(session: AsyncSession, key: str) -> None:
    await session.execute(delete(LoginThrottle).where(LoginThrottle.login == key))
