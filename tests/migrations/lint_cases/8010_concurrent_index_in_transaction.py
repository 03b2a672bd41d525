"""test only: CONCURRENTLY inside the revision's transaction (no autocommit block)

Revision ID: 8010
Revises: the real head, whichever it is
"""

from pathlib import Path

from alembic import op
from alembic.script import ScriptDirectory

# Attached to the real head, as tests/migrations/failing/9001 is (see there).
REAL_SCRIPTS = Path(__file__).resolve().parents[3] / "migrations"

revision = "8010"
down_revision = ScriptDirectory(str(REAL_SCRIPTS)).get_current_head()
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_users_first_name",
        "users",
        ["first_name"],
        postgresql_concurrently=True,
        if_not_exists=True,
    )


def downgrade() -> None:
    raise NotImplementedError("rendered, never run")
