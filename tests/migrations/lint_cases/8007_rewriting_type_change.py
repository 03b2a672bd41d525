"""test only: a type change that rewrites the table

Revision ID: 8007
Revises: the real head, whichever it is
"""

from pathlib import Path

import sqlalchemy as sa
from alembic import op
from alembic.script import ScriptDirectory

# Attached to the real head, as tests/migrations/failing/9001 is (see there).
REAL_SCRIPTS = Path(__file__).resolve().parents[3] / "migrations"

revision = "8007"
down_revision = ScriptDirectory(str(REAL_SCRIPTS)).get_current_head()
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("users", "token_version", type_=sa.BigInteger())


def downgrade() -> None:
    raise NotImplementedError("rendered, never run")
