"""test only: a column dropped

Revision ID: 8005
Revises: the real head, whichever it is
"""

from pathlib import Path

from alembic import op
from alembic.script import ScriptDirectory

# Attached to the real head, as tests/migrations/failing/9001 is (see there).
REAL_SCRIPTS = Path(__file__).resolve().parents[3] / "migrations"

revision = "8005"
down_revision = ScriptDirectory(str(REAL_SCRIPTS)).get_current_head()
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_column("users", "last_name")


def downgrade() -> None:
    raise NotImplementedError("rendered, never run")
