"""The migration request: what the event, the CLI and the release command may ask for."""

from __future__ import annotations

from typing import Any

import pytest

from lambda_app.handlers.migrate import MigrationFailed, run_migration_event
from lambda_app.migrate.actions import (
    MAX_LOCK_TIMEOUT_SECONDS,
    InvalidMigrationRequest,
    MigrationRequest,
)
from lambda_app.migrate.runner import alembic_config


@pytest.mark.parametrize("event", [None, {}, {"action": None}, {"lock_timeout_seconds": None}])
def test_an_empty_event_upgrades_to_head(event: Any) -> None:
    request = MigrationRequest.from_event(event)

    assert request == MigrationRequest()
    assert (request.action, request.target, request.mutates) == ("upgrade", "head", True)


@pytest.mark.parametrize(
    "request_",
    [
        MigrationRequest(),
        MigrationRequest("downgrade", "base"),
        MigrationRequest("check", lock_timeout_seconds=1.5),
    ],
)
def test_the_event_of_a_request_reads_back_as_that_request(request_: MigrationRequest) -> None:
    assert MigrationRequest.from_event(request_.to_event()) == request_


def test_the_event_leaves_the_defaults_out() -> None:
    # the release command sends it as is
    assert MigrationRequest().to_event() == {"action": "upgrade"}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (["upgrade"], "must be a JSON object"),
        ({"action": "sideways"}, "unknown action 'sideways'; expected one of upgrade, downgrade"),
        ({"action": "downgrade"}, "downgrade needs an explicit revision"),
        ({"action": "downgrade", "revision": ""}, "downgrade needs an explicit revision"),
        ({"revision": 1}, "revision must be a string"),
        ({"lock_timeout_seconds": 0}, "lock_timeout_seconds must be a number in"),
        ({"lock_timeout_seconds": True}, "lock_timeout_seconds must be a number in"),
        ({"lock_timeout_seconds": "60"}, "lock_timeout_seconds must be a number in"),
        ({"lock_timeout_seconds": MAX_LOCK_TIMEOUT_SECONDS + 1}, "must be a number in"),
        # steps counted from wherever the database is: a retried run would take them twice
        ({"action": "downgrade", "revision": "-1"}, "'-1' counts from the current revision"),
        ({"action": "upgrade", "revision": "+1"}, "'\\+1' counts from the current revision"),
        ({"action": "downgrade", "revision": "auth@-2"}, "counts from the current revision"),
    ],
)
def test_requests_outside_the_rules_are_refused(event: Any, message: str) -> None:
    with pytest.raises(InvalidMigrationRequest, match=message):
        MigrationRequest.from_event(event)


@pytest.mark.parametrize("revision", ["0004", "base", "head", "head-1", "0003+1", "heads"])
def test_a_revision_that_names_where_to_go_is_accepted(revision: str) -> None:
    # each means the same revision however often the request runs
    assert MigrationRequest("downgrade", revision).target == revision


def test_the_migration_function_refuses_a_counted_step_before_it_connects() -> None:
    # an event no database is needed to refuse: the failure the handler raises to Lambda
    event = {"action": "downgrade", "revision": "-1"}

    with pytest.raises(MigrationFailed, match="'-1' counts from the current revision"):
        run_migration_event(event, config=alembic_config())
