"""test only: a drop, declared as an exception without a reason

Revision ID: 8031
Revises: the real head, whichever it is
"""

from pathlib import Path

from alembic import op
from alembic.script import ScriptDirectory

# Attached to the real head, as tests/migrations/failing/9001 is (see there).
REAL_SCRIPTS = Path(__file__).resolve().parents[3] / "migrations"

revision = "8031"
down_revision = ScriptDirectory(str(REAL_SCRIPTS)).get_current_head()
branch_labels = None
depends_on = None

squawk_ignore = {"ban-drop-column": ""}


def upgrade() -> None:
    op.drop_column("users", "last_name")


def downgrade() -> None:
    raise NotImplementedError("rendered, never run")
