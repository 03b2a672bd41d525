"""Secrets Manager's rotation function for the JWT signing key (every 30 days).

Secrets Manager calls it four times per rotation, once per `Step`, each with the
secret (`SecretId`) and the new version's id (`ClientRequestToken`), which it has
already labelled AWSPENDING. Any step may be retried, so each one first looks at what
is already done:

- createSecret: the new version's value, unless it has one: a freshly generated key as
  `current`, the key in use now as `previous` (lambda_app.identity.keyring's format).
- setSecret: nothing. An HMAC key lives only in this secret; there is no database or
  service whose credentials must be changed to match.
- testSecret: the new value parses, every key in it is long enough, and its previous
  key is the one in use now (so tokens signed until now keep working). When a schedule
  is set up without an immediate rotation, Secrets Manager runs this step alone, on a
  copy of the current value: then parsing and length are the whole test.
- finishSecret: AWSCURRENT moves to the new version (Secrets Manager labels the old
  one AWSPREVIOUS). The API picks it up within JWT_SECRET_TTL_SECONDS.

Standard library and boto3 only; it ships in the API's bundle, whose keyring module
it shares, and never touches the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from lambda_app.core import aws
from lambda_app.identity.keyring import SigningKey, parse_signing_keys, short_keys

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

CURRENT = "AWSCURRENT"
PENDING = "AWSPENDING"


class RotationError(RuntimeError):
    """A rotation that must not go on. The message never quotes a key."""


def handler(event: dict[str, Any], context: object) -> None:
    rotate(
        aws.client("secretsmanager"),
        step=event["Step"],
        arn=event["SecretId"],
        token=event["ClientRequestToken"],
    )


def rotate(secretsmanager: Any, *, step: str, arn: str, token: str) -> None:
    run = STEPS.get(step)
    if run is None:
        raise RotationError(f"unknown rotation step {step!r}")
    metadata = secretsmanager.describe_secret(SecretId=arn)
    if not metadata.get("RotationEnabled"):
        raise RotationError(f"secret {arn} is not enabled for rotation")
    stages: dict[str, list[str]] = metadata.get("VersionIdsToStages", {})
    if token not in stages:
        raise RotationError(f"secret {arn} has no version {token} to rotate to")
    if CURRENT in stages[token]:
        logger.info("%s: version %s is already AWSCURRENT", step, token)
        return
    if PENDING not in stages[token]:
        raise RotationError(f"version {token} of secret {arn} is not AWSPENDING")
    run(secretsmanager, arn, token, stages)
    logger.info("%s done for version %s", step, token)


def _create(secretsmanager: Any, arn: str, token: str, stages: dict[str, list[str]]) -> None:
    if _pending_value(secretsmanager, arn, token) is not None:
        return  # a retry: the value was put already
    keys = parse_signing_keys(_value(secretsmanager, SecretId=arn, VersionStage=CURRENT))
    rotated = keys.rotated(SigningKey.generate())
    secretsmanager.put_secret_value(
        SecretId=arn,
        ClientRequestToken=token,
        SecretString=rotated.to_secret_string(),
        VersionStages=[PENDING],
    )
    logger.info("created signing key %s (previous: %s)", rotated.current.kid, keys.current.kid)


def _set(secretsmanager: Any, arn: str, token: str, stages: dict[str, list[str]]) -> None:
    """Nothing to set: no other system holds a copy of an HMAC signing key."""


def _test(secretsmanager: Any, arn: str, token: str, stages: dict[str, list[str]]) -> None:
    raw = _pending_value(secretsmanager, arn, token)
    if raw is None:
        raise RotationError(f"version {token} of secret {arn} has no value")
    pending = parse_signing_keys(raw)  # SecretFormatError names what is wrong
    if weak := short_keys(pending):
        raise RotationError(f"signing keys {weak} are too short")
    current_raw = _value(secretsmanager, SecretId=arn, VersionStage=CURRENT)
    if raw == current_raw:
        # A schedule set up without rotating at once: Secrets Manager tests the function on
        # a copy of the current value. That it parses and is strong enough is the test.
        return
    current = parse_signing_keys(current_raw)
    if pending.previous is None or pending.previous.kid != current.current.kid:
        raise RotationError("the new version does not keep the key in use as its previous")


def _finish(secretsmanager: Any, arn: str, token: str, stages: dict[str, list[str]]) -> None:
    current_version = next((v for v, labels in stages.items() if CURRENT in labels), None)
    secretsmanager.update_secret_version_stage(
        SecretId=arn,
        VersionStage=CURRENT,
        MoveToVersionId=token,
        **({"RemoveFromVersionId": current_version} if current_version else {}),
    )


STEPS: dict[str, Callable[[Any, str, str, dict[str, list[str]]], None]] = {
    "createSecret": _create,
    "setSecret": _set,
    "testSecret": _test,
    "finishSecret": _finish,
}


def _pending_value(secretsmanager: Any, arn: str, token: str) -> str | None:
    """The new version's value; None until createSecret has put one."""
    try:
        response = secretsmanager.get_secret_value(
            SecretId=arn, VersionId=token, VersionStage=PENDING
        )
    except secretsmanager.exceptions.ResourceNotFoundException:
        return None
    value = response.get("SecretString")
    return value if isinstance(value, str) else None


def _value(secretsmanager: Any, **version: str) -> str:
    value = secretsmanager.get_secret_value(**version).get("SecretString")
    if not isinstance(value, str):
        raise RotationError("the JWT secret has no SecretString")
    return value
