"""test only: a good revision after the real ones

Revision ID: 9001
Revises: the real head, whichever it is
"""

from pathlib import Path

import sqlalchemy as sa
from alembic import op
from alembic.script import ScriptDirectory

# Attached to the real head, read from the real scripts when Alembic loads this file, so
# adding a real revision needs no edit here. (That ScriptDirectory holds migrations/
# only, not this folder, so this file never reads itself.)
REAL_SCRIPTS = Path(__file__).resolve().parents[3] / "migrations"

revision = "9001"
down_revision = ScriptDirectory(str(REAL_SCRIPTS)).get_current_head()
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("release_notes", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("release_notes")
