"""test only: a NOT NULL column without a default, on an existing table

Revision ID: 8001
Revises: the real head, whichever it is
"""

from pathlib import Path

import sqlalchemy as sa
from alembic import op
from alembic.script import ScriptDirectory

# Attached to the real head, as tests/migrations/failing/9001 is (see there).
REAL_SCRIPTS = Path(__file__).resolve().parents[3] / "migrations"

revision = "8001"
down_revision = ScriptDirectory(str(REAL_SCRIPTS)).get_current_head()
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("nickname", sa.Text(), nullable=False))


def downgrade() -> None:
    raise NotImplementedError("rendered, never run")
