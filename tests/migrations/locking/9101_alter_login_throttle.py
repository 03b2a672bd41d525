"""test only: an ALTER TABLE on an existing table, which must wait for its lock

Revision ID: 9101
Revises: the real head, whichever it is
"""

from pathlib import Path

import sqlalchemy as sa
from alembic import op
from alembic.script import ScriptDirectory

# Attached to the real head, as tests/migrations/failing/9001 is (see there).
REAL_SCRIPTS = Path(__file__).resolve().parents[3] / "migrations"

revision = "9101"
down_revision = ScriptDirectory(str(REAL_SCRIPTS)).get_current_head()
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("login_throttle", sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("login_throttle", "note")
