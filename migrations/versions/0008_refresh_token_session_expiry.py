"""refresh_tokens.session_expires_at: the end of a session, however often it refreshes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 05:00:00.000000

Refreshing used to slide a session's expiry for ever. Each token now also carries the end
of its whole session (SESSION_MAX_DAYS after the login), and no token of the session
outlives it. Nullable, with no default: adding it rewrites nothing and holds its lock for
an instant. Rows already stored have none; their session's end is counted from its next
refresh.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "refresh_tokens",
        sa.Column("session_expires_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("refresh_tokens", "session_expires_at")
