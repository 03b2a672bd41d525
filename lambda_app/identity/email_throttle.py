"""How many account emails an address may be sent, per purpose, kept in PostgreSQL so
every Lambda container shares the count: at most `per_hour` in the hour that starts
with the address's first request (a fixed window, then a new one).

Every request counts (one upsert), whether or not an account has that address: the
same work either way, and spraying one address gets it nothing beyond the limit.

The count of a link mail (a reset, a verification) is the mailbox's (`mailbox_of`): the
subaddresses of one mailbox (RFC 5233, `name+tag@domain`) share it, or registering
`victim+1@`, `victim+2@`, ... would mail one inbox past the limit. A notice of a change
is counted per whole address instead: only its own account's changes send one, and an
account someone registered as `victim+1@` must not use up the share of `victim@`'s
notices, which tell its owner of a takeover. A link mail's row written while its key
was the whole address, a subaddress's, is no longer matched: its window ends within the
hour, and the clean-up takes it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Table, case
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.db.session import delete_a_few_last
from lambda_app.models import EmailThrottle

WINDOW = dt.timedelta(hours=1)
# Finished windows deleted per request: bounded, through the window_started_at index, and
# as fast as rows are added (at most one per request).
FINISHED_ROWS_DELETED_PER_REQUEST = 5


@dataclass(frozen=True)
class Allowance:
    allowed: bool
    retry_after_seconds: int  # 0 when allowed


def mailbox_of(email: str) -> str:
    """The mailbox `email` reaches, as the throttle counts it: lower-cased (as addresses
    are stored), with the local part's `+tag` left out (`Name+Tag@Example.com` is
    `name@example.com`). No provider's own foldings (Gmail's dots): other providers treat
    those as other mailboxes."""
    local, at, domain = email.lower().rpartition("@")
    if not at:  # no address at all: counted as given
        return domain
    return f"{local.partition('+')[0]}@{domain}"


async def take(
    session: AsyncSession, purpose: str, email: str, *, per_hour: int, per_mailbox: bool = True
) -> Allowance:
    """Count one request for `email`'s mailbox (or, not `per_mailbox`, for `email` itself,
    lower-cased) and say whether an email may be sent for it. `purpose`: a `TokenPurpose`
    (a StrEnum), or the name of a mail that carries no token."""
    now = dt.datetime.now(dt.UTC)
    table = EmailThrottle.__table__
    assert isinstance(table, Table)
    expired = table.c.window_started_at < now - WINDOW
    key = mailbox_of(email) if per_mailbox else email.lower()
    count = (
        insert(table)
        .values(purpose=str(purpose), email=key, requests=1, window_started_at=now)
        .on_conflict_do_update(
            index_elements=[table.c.purpose, table.c.email],
            set_={
                # A request after the window has passed starts a new count.
                "requests": case((expired, 1), else_=table.c.requests + 1),
                "window_started_at": case((expired, now), else_=table.c.window_started_at),
            },
        )
        .returning(table.c.requests, table.c.window_started_at)
    )
    row = (await session.execute(count)).one()
    # A few finished windows go too, skipping rows other requests hold, as the
    # transaction's last statement: it then holds other addresses' rows while it waits
    # for nothing. Deleted here, they were held while the transaction went on to wait
    # for a user's row, which a request changing that user's email could hold while it
    # waited for one of them: a deadlock.
    delete_a_few_last(
        session,
        "email_throttle.finished_windows",
        (table.c.purpose, table.c.email),
        table.c.window_started_at < now - WINDOW,
        limit=FINISHED_ROWS_DELETED_PER_REQUEST,
    )
    if row.requests <= per_hour:
        return Allowance(allowed=True, retry_after_seconds=0)
    remaining = (row.window_started_at + WINDOW - now).total_seconds()
    return Allowance(allowed=False, retry_after_seconds=max(1, int(remaining) + 1))
