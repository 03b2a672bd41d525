"""index login_throttle.window_started_at, for the bounded clean-up of finished windows

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 16:00:00.000000

Every guess now deletes a few counters whose window has ended (identity.password_attempts):
the rows of login names nobody tries again were never deleted before.

Built in the revision's transaction, not CONCURRENTLY (an exception to
docs/migrations-and-releases.md, declared below). CREATE INDEX CONCURRENTLY waits for
every transaction with an older snapshot, and a second migration run waiting for the
migration lock is one (its `SELECT pg_advisory_lock()` is running): it waits for this run,
which would wait for it until its lock timeout and fail
(tests/handlers/test_migrate.py::test_concurrent_runs_are_serialized_by_the_advisory_lock).
A plain build holds off writes to this one table while it lasts, and the table is small:
one short row per name tried (a few million rows build in seconds). Logins wait for it
(their counters are written), within their statement timeout; nothing else does.

The rows already stored stay. The login-name keys took a `login:` prefix in the same
release, so the old ones are matched by no key any more; they end with their window and
the clean-up deletes them with the rest.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

squawk_ignore = {
    "require-concurrent-index-creation": (
        "a small table, and a concurrent build would wait for a second migration run "
        "waiting for the migration lock (see the docstring)"
    )
}


def upgrade() -> None:
    op.create_index(
        op.f("ix_login_throttle_window_started_at"), "login_throttle", ["window_started_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_login_throttle_window_started_at"), table_name="login_throttle")
