"""Limits on password guesses, kept in PostgreSQL so every container shares them.

A guess is counted before its password is checked, in a short transaction of its own
committed at once, and it is refused once its counters are over the limit: so a burst of
concurrent guesses gets no more checks than a sequence would (a check-then-count would
let every request of the burst through), and a failed request's rollback can't undo it.
A guess that turns out right clears the counters again.

Counters (the `login_throttle` table) are keyed by what a guess names: the login as typed
(normalized), so unknown names are limited too and answer like known ones, and the
account it resolves to, so its username and its email share one budget. Changing the
password while signed in counts against the same account budget: a stolen access token
can't guess the current password either.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Table, case, delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.core import metrics
from lambda_app.core.settings import ApiSettings
from lambda_app.db.session import transaction_of_its_own
from lambda_app.models import LoginThrottle

LOGIN_KEY_MAX = 320


def login_key(login: str) -> str:
    # NUL can't go into a PostgreSQL text parameter; "bob\0" counts as "bob".
    return login.replace("\x00", "").strip().lower()[:LOGIN_KEY_MAX]


def account_key(user_id: int) -> str:
    # No login can spell it: usernames have no ':' and emails have an '@'.
    return f"account:{user_id}"


def keys_for(*, login: str | None = None, user_id: int | None = None) -> list[str]:
    """The counters a guess counts against: its login as typed and its account, if any."""
    keys = [] if login is None else [login_key(login)]
    return keys if user_id is None else [*keys, account_key(user_id)]


async def take_attempt(
    request_session: AsyncSession, keys: Sequence[str], settings: ApiSettings
) -> int:
    """Count one guess against every key, committed at once; the seconds it must wait
    (0: check the password). Ends the request's transaction first, like any transaction
    of its own (lambda_app.db.session): read what you need from it before."""
    now = dt.datetime.now(dt.UTC)
    window = dt.timedelta(seconds=settings.login_failure_window_seconds)
    table = LoginThrottle.__table__
    assert isinstance(table, Table)
    expired = table.c.window_started_at < now - window
    stmt = (
        insert(table)
        .values([{"login": key, "failures": 1, "window_started_at": now} for key in keys])
        .on_conflict_do_update(
            index_elements=[table.c.login],
            set_={
                # A guess after the window has passed starts a new count.
                "failures": case((expired, 1), else_=table.c.failures + 1),
                "window_started_at": case((expired, now), else_=table.c.window_started_at),
            },
        )
        .returning(table.c.failures, table.c.window_started_at)
    )
    async with transaction_of_its_own(request_session) as session:
        counters = (await session.execute(stmt)).all()
    over = [started for failures, started in counters if failures > settings.login_max_failures]
    if any(failures == settings.login_max_failures + 1 for failures, _ in counters):
        metrics.count(metrics.LOGIN_LOCKOUTS, stage=settings.environment)  # the first refused
    if not over:
        return 0
    remaining = (max(over) + window - now).total_seconds()
    return max(int(remaining) + 1, 1)


async def clear(session: AsyncSession, keys: Sequence[str]) -> None:
    """Forget the counted guesses: the password was right. In the request's transaction."""
    await session.execute(delete(LoginThrottle).where(LoginThrottle.login.in_(keys)))
