"""the API's own role: rows of the app's tables, nothing else

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 22:55:00.000000

The role is cluster-wide, so it may exist already (another database of the same
server, a re-run after a downgrade): created only if missing. Its privileges are
granted in this database, on the tables that exist and, through default
privileges, on every table and sequence later migrations create (they run as the
same owner). `rds_iam` exists only on RDS: granted there, so the API can log in
with IAM tokens through RDS Proxy.
"""

from collections.abc import Sequence

from alembic import op

from lambda_app.workload import API_ROLE

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROWS = "SELECT, INSERT, UPDATE, DELETE"
# Identity columns draw from a sequence: INSERT needs USAGE on it.
SEQUENCES = "USAGE, SELECT"


def upgrade() -> None:
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{API_ROLE}') THEN
                CREATE ROLE {API_ROLE} LOGIN;
            END IF;
            IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_iam') THEN
                GRANT rds_iam TO {API_ROLE};
            END IF;
        END
        $$
        """
    )
    # asyncpg's type lookups (enums, domains) plan above jit_above_cost: with JIT on, a
    # server would compile one per request that touches such a type. The client can't
    # turn it off per session without pinning at RDS Proxy (a SET); the role's default can.
    op.execute(f"ALTER ROLE {API_ROLE} SET jit = off")
    # PostgreSQL before 15 lets every role create tables in `public`: not this one.
    op.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {API_ROLE}")
    op.execute(f"GRANT {ROWS} ON ALL TABLES IN SCHEMA public TO {API_ROLE}")
    op.execute(f"GRANT {SEQUENCES} ON ALL SEQUENCES IN SCHEMA public TO {API_ROLE}")
    # Alembic's bookkeeping is the migrations' alone.
    op.execute(f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {API_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {ROWS} ON TABLES TO {API_ROLE}")
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {SEQUENCES} ON SEQUENCES TO {API_ROLE}"
    )


def downgrade() -> None:
    op.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE {SEQUENCES} ON SEQUENCES FROM {API_ROLE}"
    )
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE {ROWS} ON TABLES FROM {API_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {API_ROLE}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {API_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {API_ROLE}")
    op.execute(f"ALTER ROLE {API_ROLE} RESET jit")
    # The role itself stays while another database of the server still grants it
    # something: dropping it would fail there, and the API of that database needs it.
    op.execute(
        f"""
        DO $$
        BEGIN
            DROP ROLE IF EXISTS {API_ROLE};
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'role {API_ROLE} kept: other databases still grant it privileges';
        END
        $$
        """
    )
