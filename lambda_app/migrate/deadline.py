"""How long a migration run may take: a deadline, and the function timeout it comes from.

On Lambda the deadline is the invocation's remaining time less a margin to report a
failure; elsewhere (the CLI, `alembic`, tests) it is the budget a run has on Lambda. Every
wait of the run ends before it: the advisory lock, each statement (`timeouts`).

Standard library only: `infra_cdk/constructs/migrations.py` imports the function timeout
from here, so the app and the infrastructure can't disagree about it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

# The migration function's configured timeout. Long enough for a real migration (an
# index build, a backfill), and under Lambda's 900 s so that CDK's trigger, which waits
# a little longer than the function runs, fits the 15 minutes its own provider may take.
MIGRATION_FUNCTION_TIMEOUT_SECONDS = 14 * 60

# Kept back from the invocation's remaining time. After the deadline the run still has to
# hear back from PostgreSQL (asyncpg's cancel request opens a connection of its own,
# within the 5 s connect timeout), roll back, unlock, close its connections and log the
# failure: a few seconds on the function's share of a vCPU. 20 s leaves room for that
# twice over; each second more is a second less for every migration.
REPORTING_MARGIN_SECONDS = 20.0

# Outside Lambda: the budget a run has in the function, so that a migration too slow for
# the function fails the same way on a developer's machine.
DEFAULT_RUN_SECONDS = MIGRATION_FUNCTION_TIMEOUT_SECONDS - REPORTING_MARGIN_SECONDS

# PostgreSQL's bounds (statement_timeout, lock_timeout) end this long before the client's
# own, so the server's error arrives on a live connection and rolls back the usual way;
# the client's bound is the backstop for a server that does not answer.
SERVER_LEAD_SECONDS = 2.0


class MigrationDeadlineExceeded(RuntimeError):
    """The run ran out of time: what it was doing was rolled back. The message is log-safe."""

    def __init__(self, deadline: Deadline) -> None:
        super().__init__(
            f"the run reached its deadline ({deadline.budget_seconds:.1f} s): the revision in "
            "progress was rolled back, the revisions before it stay applied; give the run "
            "more time, or split the migration into smaller revisions"
        )


@dataclass(frozen=True)
class Deadline:
    at: float  # time.monotonic()
    budget_seconds: float  # what the run was given, for messages and logs

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(at=time.monotonic() + seconds, budget_seconds=seconds)

    @classmethod
    def for_invocation(cls, context: Any) -> Deadline:
        """The Lambda context's remaining time less the reporting margin; without a Lambda
        context (a local gateway's may lack the method), the default budget."""
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        if remaining_ms is None:
            return cls.after(DEFAULT_RUN_SECONDS)
        return cls.after(remaining_ms() / 1000 - REPORTING_MARGIN_SECONDS)

    def seconds_left(self) -> float:
        """Until the client gives up."""
        return self.at - time.monotonic()

    def server_seconds_left(self) -> float:
        """Until PostgreSQL's bounds must have fired."""
        return self.seconds_left() - SERVER_LEAD_SECONDS

    def check(self) -> None:
        """Refuse to start anything once the server's share of the time is gone."""
        if self.server_seconds_left() <= 0:
            raise MigrationDeadlineExceeded(self)
