"""index login_throttle.window_started_at, for the bounded clean-up of finished windows

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 16:00:00.000000

Every guess now deletes a few counters whose window has ended (identity.password_attempts):
the rows of login names nobody tries again were never deleted before.

Built concurrently (docs/migrations-and-releases.md's recipe): logins write the table.

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


INDEX = "ix_login_throttle_window_started_at"


def _drop_index() -> None:
    op.drop_index(INDEX, table_name="login_throttle", postgresql_concurrently=True, if_exists=True)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        # A failed build (the run's deadline, a cancel) leaves an invalid index behind:
        # the next run drops it and builds it again.
        _drop_index()
        op.create_index(
            INDEX,
            "login_throttle",
            ["window_started_at"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        _drop_index()
