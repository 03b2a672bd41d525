"""test only: the index recipe (docs/migrations-and-releases.md): passes, and a rerun
rebuilds the index a failed build left invalid (tests/migrations/test_index_recipe.py)

Revision ID: 8020
Revises: the real head, whichever it is
"""

from pathlib import Path

from alembic import op
from alembic.script import ScriptDirectory

# Attached to the real head, as tests/migrations/failing/9001 is (see there).
REAL_SCRIPTS = Path(__file__).resolve().parents[3] / "migrations"

revision = "8020"
down_revision = ScriptDirectory(str(REAL_SCRIPTS)).get_current_head()
branch_labels = None
depends_on = None


def upgrade() -> None:
    # CREATE INDEX CONCURRENTLY cannot run in a transaction: commit, build, begin again.
    with op.get_context().autocommit_block():
        # A failed build leaves an invalid index, which IF NOT EXISTS alone would keep.
        op.drop_index(
            "ix_users_first_name",
            table_name="users",
            postgresql_concurrently=True,
            if_exists=True,
        )
        op.create_index(
            "ix_users_first_name",
            "users",
            ["first_name"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    raise NotImplementedError("never downgraded")
