"""server-side time limits for the API role: statements and idle transactions

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 06:00:00.000000

The client's `DB_COMMAND_TIMEOUT_SECONDS` ends a statement by sending PostgreSQL a
cancel request with the key the server gave at login. Behind RDS Proxy that key
may never reach the client, and a Lambda killed at its timeout sends nothing at
all: the statement would go on holding its locks and a database connection. The
role's own defaults stop it on the server, whoever the client is. They are
applied when a backend logs in as the role, so they reach RDS Proxy's
connections without any SET (which would pin the client's session). The
migrations connect as the schema's owner and are not affected.
"""

from collections.abc import Sequence

from alembic import op

from lambda_app.workload import API_ROLE

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Below the client's default command timeout (10 s), so the server's answer, a clean
# error the API turns into a 503, arrives first. It also bounds waits for locks.
STATEMENT_TIMEOUT = "9s"
# No request outlives the API function's 20 s timeout: a transaction idle for longer
# belongs to a client that is gone, and it still holds its row locks.
IDLE_IN_TRANSACTION_SESSION_TIMEOUT = "1min"


def upgrade() -> None:
    op.execute(f"ALTER ROLE {API_ROLE} SET statement_timeout = '{STATEMENT_TIMEOUT}'")
    op.execute(
        f"ALTER ROLE {API_ROLE} SET idle_in_transaction_session_timeout"
        f" = '{IDLE_IN_TRANSACTION_SESSION_TIMEOUT}'"
    )


def downgrade() -> None:
    op.execute(f"ALTER ROLE {API_ROLE} RESET idle_in_transaction_session_timeout")
    op.execute(f"ALTER ROLE {API_ROLE} RESET statement_timeout")
