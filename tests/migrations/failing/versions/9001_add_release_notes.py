"""test only: a good revision after the real ones

Revision ID: 9001
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("release_notes", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("release_notes")
