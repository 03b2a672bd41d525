"""no temporary tables: TEMPORARY on the database is revoked from PUBLIC

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 22:30:00.000000

PostgreSQL grants TEMPORARY on every database to PUBLIC, so the API role could still
create temporary tables, indexes on them and functions in `pg_temp`: schema objects the
API has no business making, and a temporary table pins its RDS Proxy session for as long
as it lives. The database's owner (the role the migrations connect as) keeps it; another
role that needs it gets `GRANT TEMPORARY ON DATABASE ... TO <role>`.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The database's name, quoted, is only known on the server.
_ON_THIS_DATABASE = """
DO $$ BEGIN
    EXECUTE format('{statement} TEMPORARY ON DATABASE %I {direction} PUBLIC', current_database());
END $$
"""


def upgrade() -> None:
    op.execute(_ON_THIS_DATABASE.format(statement="REVOKE", direction="FROM"))


def downgrade() -> None:
    op.execute(_ON_THIS_DATABASE.format(statement="GRANT", direction="TO"))
