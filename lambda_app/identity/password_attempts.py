"""Limits on password guesses, kept in PostgreSQL so every container shares them.

A guess is checked while its counters are locked, and its outcome recorded before the
lock is let go: guesses at one login name or account are checked one at a time, so a
burst of concurrent guesses gets no more checks than a sequence would (checking first and
counting afterwards would let every guess of the burst through), and concurrent logins
that are right wait their turn instead of being refused. The guess runs in a transaction
of its own, committed whatever the request does next: its rollback can't undo a count.
Once a counter holds `LOGIN_MAX_FAILURES` failures within the window, guesses against it
are refused unchecked until the window ends; a right guess clears the counters. Every
guess also deletes a few counters of other names whose window has ended, so the names
nobody tries again don't pile up.

Counters (the `login_throttle` table) are keyed by what a guess names: the login name
folded as uniqueness folds it (`login:<name>`, identity.login_names), so unknown names are
limited too and answer like known ones, and the account it resolves to (`account:<id>`),
so its username and its email share one budget. Changing the password while signed in
counts against the same account budget: a stolen access token can't guess the current
password either.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from lambda_app.core import metrics
from lambda_app.core.settings import ApiSettings
from lambda_app.db.session import delete_a_few_last
from lambda_app.identity.login_names import account_name
from lambda_app.models import LoginThrottle

LOGIN_KEY_MAX = 320  # the column's length
# Finished windows deleted per guess: bounded, through the window_started_at index, and
# faster than rows are added (at most two per guess: its login name's and its account's).
FINISHED_ROWS_DELETED_PER_GUESS = 5
# Every key says what it counts, so none of one kind can spell one of the other: a login
# name typed as "account:<id>" is the key "login:account:<id>", never that account's.
LOGIN_PREFIX, ACCOUNT_PREFIX = "login:", "account:"


def login_key(login: str) -> str:
    """The counter of a login name: the account name it folds to (identity.login_names),
    so that `Bob_1`, `bob-1` and any other spelling of one name share one budget."""
    # NUL can't go into a PostgreSQL text parameter; "bob\0" counts as "bob", and so
    # does " bob " (no name has spaces around it).
    typed = login.replace("\x00", "").strip()
    name = account_name(typed) or typed.lower()  # an invalid email: as typed
    return LOGIN_PREFIX + name[: LOGIN_KEY_MAX - len(LOGIN_PREFIX)]


def account_key(user_id: int) -> str:
    return f"{ACCOUNT_PREFIX}{user_id}"


def keys_for(*, login: str | None = None, user_id: int | None = None) -> list[str]:
    """The counters a guess counts against: its login as typed and its account, if any."""
    keys = [] if login is None else [login_key(login)]
    return keys if user_id is None else [*keys, account_key(user_id)]


@dataclass(frozen=True)
class Guess:
    locked_for: int  # seconds until guesses are checked again; 0: this one was checked
    right: bool = False


async def guess(
    session: AsyncSession, keys: Sequence[str], settings: ApiSettings, check: Callable[[], bool]
) -> Guess:
    """Run `check` (is the password right?) as one guess against `keys`, unless they are
    locked out. Call it in a transaction of its own (db.session.transaction_of_its_own):
    its counters stay locked until that commits."""
    keys = sorted(set(keys))  # one lock order for every guess, inserting and locking
    now = dt.datetime.now(dt.UTC)
    window = dt.timedelta(seconds=settings.login_failure_window_seconds)
    # Each counter locked here, inserted first if there is none (a first guess, or a right
    # guess deleted it). DO UPDATE, a write that changes nothing, not DO NOTHING: it locks
    # the row it finds, and if a right guess deletes that row while this one waits, it
    # inserts a new one. DO NOTHING locked nothing, and a guess queued behind a right one
    # then found no row to lock: neither counted nor checked one at a time.
    await session.execute(
        insert(LoginThrottle)
        .values([{"login": key, "failures": 0, "window_started_at": now} for key in keys])
        .on_conflict_do_update(
            index_elements=[LoginThrottle.login], set_={"failures": LoginThrottle.failures}
        )
    )
    # A few counters of other names whose window has ended go too, skipping rows other
    # guesses hold, as the transaction's last statement: it then holds them while it
    # waits for nothing, so two guesses can't deadlock (the email throttle's lesson).
    delete_a_few_last(
        session,
        "login_throttle.finished_windows",
        (LoginThrottle.__table__.c.login,),
        (LoginThrottle.window_started_at < now - window) & LoginThrottle.login.not_in(keys),
        limit=FINISHED_ROWS_DELETED_PER_GUESS,
    )
    counters = list(
        await session.scalars(
            select(LoginThrottle)
            .where(LoginThrottle.login.in_(keys))
            .order_by(LoginThrottle.login)
            .with_for_update()
        )
    )
    for counter in counters:
        if counter.window_started_at + window <= now:  # its window has passed: a new count
            counter.failures, counter.window_started_at = 0, now
    locked = [c for c in counters if c.failures >= settings.login_max_failures]
    if locked:
        window_ends = max(c.window_started_at for c in locked) + window
        return Guess(locked_for=max(int((window_ends - now).total_seconds()) + 1, 1))

    if check():
        await clear(session, keys)
        return Guess(locked_for=0, right=True)
    for counter in counters:
        counter.failures += 1
    if any(c.failures == settings.login_max_failures for c in counters):
        metrics.count(metrics.LOGIN_LOCKOUTS, stage=settings.environment)
    await session.flush()
    return Guess(locked_for=0)


async def clear(session: AsyncSession, keys: Sequence[str]) -> None:
    """Forget the guesses counted against `keys` (their owner just proved who they are)."""
    await session.execute(delete(LoginThrottle).where(LoginThrottle.login.in_(keys)))
