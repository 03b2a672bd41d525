"""test only: a table renamed

Revision ID: 8004
Revises: the real head, whichever it is
"""

from pathlib import Path

from alembic import op
from alembic.script import ScriptDirectory

# Attached to the real head, as tests/migrations/failing/9001 is (see there).
REAL_SCRIPTS = Path(__file__).resolve().parents[3] / "migrations"

revision = "8004"
down_revision = ScriptDirectory(str(REAL_SCRIPTS)).get_current_head()
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.rename_table("login_throttle", "login_attempts")


def downgrade() -> None:
    raise NotImplementedError("rendered, never run")
