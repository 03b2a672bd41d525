"""The run's deadline: where it comes from, what it leaves the lock wait, and the function
timeout it is measured against."""

from __future__ import annotations

import types

import pytest

from infra_cdk.constructs.migrations import TRIGGER_TIMEOUT
from lambda_app.migrate.actions import LAMBDA_MAX_RUN_SECONDS
from lambda_app.migrate.deadline import (
    DEFAULT_RUN_SECONDS,
    MIGRATION_FUNCTION_TIMEOUT_SECONDS,
    REPORTING_MARGIN_SECONDS,
    SERVER_LEAD_SECONDS,
    Deadline,
    MigrationDeadlineExceeded,
)
from lambda_app.migrate.lock import lock_wait_seconds


def lambda_context(remaining_ms: int) -> types.SimpleNamespace:
    """What the Lambda runtime passes, frozen at one moment."""
    return types.SimpleNamespace(get_remaining_time_in_millis=lambda: remaining_ms)


def test_on_lambda_the_budget_is_the_remaining_time_less_the_reporting_margin() -> None:
    deadline = Deadline.for_invocation(lambda_context(300_000))

    assert deadline.budget_seconds == 300 - REPORTING_MARGIN_SECONDS


@pytest.mark.parametrize("context", [None, object()])
def test_without_a_lambda_context_the_budget_is_a_runs_on_lambda(context: object) -> None:
    assert Deadline.for_invocation(context).budget_seconds == DEFAULT_RUN_SECONDS


@pytest.mark.parametrize("remaining_ms", [0, int(REPORTING_MARGIN_SECONDS * 1000)])
def test_an_invocation_with_no_time_beyond_the_margin_is_refused(remaining_ms: int) -> None:
    with pytest.raises(MigrationDeadlineExceeded, match="reached its deadline"):
        Deadline.for_invocation(lambda_context(remaining_ms)).check()


def test_a_shorter_lock_wait_asked_for_is_kept() -> None:
    assert lock_wait_seconds(5.0, Deadline.after(600)) == (5.0, False)


@pytest.mark.parametrize("requested", [None, 900.0])
def test_otherwise_the_lock_wait_lasts_until_the_servers_share_of_the_deadline(
    requested: float | None,
) -> None:
    wait, until_deadline = lock_wait_seconds(requested, Deadline.after(60))

    assert until_deadline is True
    assert 0 < wait <= 60 - SERVER_LEAD_SECONDS


def test_no_lock_wait_once_the_time_is_up() -> None:
    with pytest.raises(MigrationDeadlineExceeded):
        lock_wait_seconds(None, Deadline.after(SERVER_LEAD_SECONDS / 2))


def test_the_function_timeout_fits_lambda_and_the_deploy_trigger_waits_for_all_of_it() -> None:
    # (the synthesized function's own Timeout: tests/infra/test_stack.py)
    assert MIGRATION_FUNCTION_TIMEOUT_SECONDS <= LAMBDA_MAX_RUN_SECONDS
    # the deploy trigger waits for the whole run, failure report included
    assert TRIGGER_TIMEOUT.to_seconds() > MIGRATION_FUNCTION_TIMEOUT_SECONDS
    # outside Lambda a run gets what a run on Lambda gets
    assert DEFAULT_RUN_SECONDS == MIGRATION_FUNCTION_TIMEOUT_SECONDS - REPORTING_MARGIN_SECONDS
