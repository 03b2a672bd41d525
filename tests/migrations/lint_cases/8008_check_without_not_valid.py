"""test only: a CHECK constraint added without NOT VALID

Revision ID: 8008
Revises: the real head, whichever it is
"""

from pathlib import Path

from alembic import op
from alembic.script import ScriptDirectory

# Attached to the real head, as tests/migrations/failing/9001 is (see there).
REAL_SCRIPTS = Path(__file__).resolve().parents[3] / "migrations"

revision = "8008"
down_revision = ScriptDirectory(str(REAL_SCRIPTS)).get_current_head()
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_check_constraint("token_version_not_negative", "users", "token_version >= 0")


def downgrade() -> None:
    raise NotImplementedError("rendered, never run")
