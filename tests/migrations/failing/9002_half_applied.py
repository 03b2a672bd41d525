"""test only: creates a table, then fails

Revision ID: 9002
Revises: 9001
"""

import sqlalchemy as sa
from alembic import op

revision = "9002"
down_revision = "9001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("half_applied", sa.Column("id", sa.Integer(), primary_key=True))
    op.execute("INSERT INTO half_applied (id) VALUES (1)")
    # Fails inside the database, as a real broken migration would.
    op.execute("SELECT 1 / 0")


def downgrade() -> None:
    op.drop_table("half_applied")
