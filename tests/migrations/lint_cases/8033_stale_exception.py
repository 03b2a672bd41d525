"""test only: an exception for a rule the revision does not break

Revision ID: 8033
Revises: the real head, whichever it is
"""

from pathlib import Path

import sqlalchemy as sa
from alembic import op
from alembic.script import ScriptDirectory

# Attached to the real head, as tests/migrations/failing/9001 is (see there).
REAL_SCRIPTS = Path(__file__).resolve().parents[3] / "migrations"

revision = "8033"
down_revision = ScriptDirectory(str(REAL_SCRIPTS)).get_current_head()
branch_labels = None
depends_on = None

squawk_ignore = {"ban-drop-table": "left over from an earlier draft of this revision"}


def upgrade() -> None:
    op.add_column("users", sa.Column("nickname", sa.Text(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("rendered, never run")
