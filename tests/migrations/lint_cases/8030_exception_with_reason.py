"""test only: a drop, declared as an exception with a reason: passes

Revision ID: 8030
Revises: the real head, whichever it is
"""

from pathlib import Path

from alembic import op
from alembic.script import ScriptDirectory

# Attached to the real head, as tests/migrations/failing/9001 is (see there).
REAL_SCRIPTS = Path(__file__).resolve().parents[3] / "migrations"

revision = "8030"
down_revision = ScriptDirectory(str(REAL_SCRIPTS)).get_current_head()
branch_labels = None
depends_on = None

# The contract step: no release still deployed reads the column.
squawk_ignore = {"ban-drop-column": "contract: no deployed release reads last_name"}


def upgrade() -> None:
    op.drop_column("users", "last_name")


def downgrade() -> None:
    raise NotImplementedError("rendered, never run")
