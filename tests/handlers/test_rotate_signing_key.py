"""The JWT key's rotation function, step by step, against moto's Secrets Manager."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from lambda_app.core.aws import SecretFormatError
from lambda_app.handlers.rotate_signing_key import RotationError, handler, rotate
from lambda_app.identity.keyring import MIN_KEY_LENGTH, derived_kid, parse_signing_keys
from tests.fixtures.rotation import (
    PLAIN_KEY,
    STEPS,
    begin_rotation,
    current_value,
    end_rotation,
    moto_jwt_secret,
)
from tests.fixtures.rotation import rotate as rotate_all


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    with moto_jwt_secret(monkeypatch) as found:
        yield found


def _stages(client: Any, arn: str) -> dict[str, list[str]]:
    stages: dict[str, list[str]] = client.describe_secret(SecretId=arn)["VersionIdsToStages"]
    return stages


def test_each_step_as_secrets_manager_calls_it(aws: tuple[Any, str]) -> None:
    client, arn = aws
    token = begin_rotation(client, arn)

    # createSecret: a new AWSPENDING value, the plain key kept as previous
    for step in ("createSecret", "setSecret", "testSecret"):
        handler({"Step": step, "SecretId": arn, "ClientRequestToken": token}, None)
        assert current_value(client, arn) == PLAIN_KEY  # nothing current changes before finish
    pending = parse_signing_keys(
        client.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")[
            "SecretString"
        ]
    )
    assert pending.previous is not None
    assert pending.previous.key == PLAIN_KEY and pending.previous.kid == derived_kid(PLAIN_KEY)
    assert len(pending.current.key) >= MIN_KEY_LENGTH and pending.current.key != PLAIN_KEY

    # finishSecret: AWSCURRENT moves to the new version
    handler({"Step": "finishSecret", "SecretId": arn, "ClientRequestToken": token}, None)
    assert "AWSCURRENT" in _stages(client, arn)[token]
    assert parse_signing_keys(current_value(client, arn)) == pending
    previous_versions = [v for v, s in _stages(client, arn).items() if "AWSPREVIOUS" in s]
    assert len(previous_versions) == 1 and previous_versions[0] != token


def test_retried_steps_change_nothing(aws: tuple[Any, str]) -> None:
    client, arn = aws
    token = begin_rotation(client, arn)
    rotate(client, step="createSecret", arn=arn, token=token)
    first = client.get_secret_value(SecretId=arn, VersionId=token)["SecretString"]
    rotate(client, step="createSecret", arn=arn, token=token)  # a retry: same value
    assert client.get_secret_value(SecretId=arn, VersionId=token)["SecretString"] == first
    for step in ("testSecret", "finishSecret", "finishSecret", "testSecret"):
        rotate(client, step=step, arn=arn, token=token)  # after finish: "already current"
    assert current_value(client, arn) == first


def test_a_late_retry_of_any_step_after_the_rotation_ended_changes_nothing(
    aws: tuple[Any, str],
) -> None:
    # On AWS, once finishSecret has made the version current, Secrets Manager may take
    # AWSPENDING off it: a step retried then finds the version AWSCURRENT only, which
    # only the "already AWSCURRENT" check lets through (it is not AWSPENDING any more).
    client, arn = aws
    token = begin_rotation(client, arn)
    for step in STEPS:
        rotate(client, step=step, arn=arn, token=token)
    end_rotation(client, arn, token)
    assert _stages(client, arn)[token] == ["AWSCURRENT"]
    before, value = _stages(client, arn), current_value(client, arn)
    called: list[str] = []
    client.meta.events.register(
        "before-call.secrets-manager", lambda model, **_: called.append(model.name)
    )
    for step in STEPS:
        rotate(client, step=step, arn=arn, token=token)  # no RotationError
    assert called == ["DescribeSecret", "DescribeSecret", "DescribeSecret", "DescribeSecret"]
    assert _stages(client, arn) == before  # no version and no label added or moved
    assert current_value(client, arn) == value


def test_two_rotations_keep_one_previous_key(aws: tuple[Any, str]) -> None:
    client, arn = aws
    rotate_all(client, arn)
    after_first = parse_signing_keys(current_value(client, arn))
    rotate_all(client, arn)
    after_second = parse_signing_keys(current_value(client, arn))
    assert after_second.previous == after_first.current
    assert PLAIN_KEY not in current_value(client, arn)
    assert len({after_first.current.kid, after_second.current.kid, derived_kid(PLAIN_KEY)}) == 3


def test_refuses_a_secret_not_enabled_for_rotation(aws: tuple[Any, str]) -> None:
    client, arn = aws
    with pytest.raises(RotationError, match="not enabled for rotation"):
        rotate(client, step="createSecret", arn=arn, token="0" * 32)


def test_refuses_an_unknown_version_or_step(aws: tuple[Any, str]) -> None:
    client, arn = aws
    begin_rotation(client, arn)
    with pytest.raises(RotationError, match="no version"):
        rotate(client, step="createSecret", arn=arn, token="f" * 32)
    with pytest.raises(RotationError, match="unknown rotation step"):
        rotate(client, step="dropSecret", arn=arn, token="f" * 32)


def test_refuses_a_version_that_is_not_pending(aws: tuple[Any, str]) -> None:
    client, arn = aws
    token = begin_rotation(client, arn)
    rotate(client, step="createSecret", arn=arn, token=token)
    client.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSPENDING", RemoveFromVersionId=token
    )
    with pytest.raises(RotationError, match="not AWSPENDING"):
        rotate(client, step="finishSecret", arn=arn, token=token)
    assert current_value(client, arn) == PLAIN_KEY


def _put_pending(client: Any, arn: str, token: str, value: str) -> None:
    client.put_secret_value(
        SecretId=arn, ClientRequestToken=token, SecretString=value, VersionStages=["AWSPENDING"]
    )


def test_test_step_refuses_short_or_broken_keys(aws: tuple[Any, str]) -> None:
    client, arn = aws
    token = begin_rotation(client, arn)
    short = {"current": {"kid": "new", "key": "short"}, "previous": None}
    _put_pending(client, arn, token, json.dumps(short))
    with pytest.raises(RotationError, match="too short"):
        rotate(client, step="testSecret", arn=arn, token=token)

    token = begin_rotation(client, arn)
    _put_pending(client, arn, token, '{"current": ')
    with pytest.raises(SecretFormatError, match="not JSON"):
        rotate(client, step="testSecret", arn=arn, token=token)


def test_test_step_refuses_a_version_that_drops_the_key_in_use(aws: tuple[Any, str]) -> None:
    # Tokens signed until now would all be refused: everyone signed out.
    client, arn = aws
    token = begin_rotation(client, arn)
    fresh = {"current": {"kid": "new", "key": "n" * 64}, "previous": None}
    _put_pending(client, arn, token, json.dumps(fresh))
    with pytest.raises(RotationError, match="does not keep the key in use"):
        rotate(client, step="testSecret", arn=arn, token=token)


def test_test_step_alone_on_a_copy_of_the_current_value_passes(aws: tuple[Any, str]) -> None:
    # A schedule set up without rotating at once: Secrets Manager tests on such a copy.
    client, arn = aws
    token = begin_rotation(client, arn)
    _put_pending(client, arn, token, PLAIN_KEY)
    rotate(client, step="testSecret", arn=arn, token=token)


def test_test_step_refuses_a_short_key_even_as_a_copy_of_the_current_value(
    aws: tuple[Any, str],
) -> None:
    # The test Secrets Manager runs when a schedule is set up without rotating at once,
    # on a secret whose key is too short: the schedule must not be set up as if all
    # were well. Being a copy of the current value excuses only the previous-key check.
    client, arn = aws
    weak = "w" * (MIN_KEY_LENGTH - 1)
    client.put_secret_value(SecretId=arn, SecretString=weak)  # now AWSCURRENT
    token = begin_rotation(client, arn)
    _put_pending(client, arn, token, weak)
    with pytest.raises(RotationError, match="too short"):
        rotate(client, step="testSecret", arn=arn, token=token)
