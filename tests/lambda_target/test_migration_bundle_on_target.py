"""The migration bundle `cdk deploy` ships, on arm64 under awslambdaric, as the deploy's
trigger invokes it: an empty event (upgrade to head), twice in one warm container."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from lambda_app.devtools.database import plain_connection
from tests.lambda_target.bundles import Target
from tests.lambda_target.function_process import FunctionConfig, running_function
from tests.lambda_target.observe import VerboseImports, file_list, shipped_bytecode

pytestmark = pytest.mark.slow

SUPERUSER = {
    "FIRST_SUPERUSER_USERNAME": "target_admin",
    "FIRST_SUPERUSER_EMAIL": "target_admin@example.com",
    "FIRST_SUPERUSER_PASSWORD": "target-admin-password-1",
}


def _head_revision_list() -> list[str]:
    """Every revision from base to head, in the order an upgrade applies them."""
    from alembic.script import ScriptDirectory

    from lambda_app.migrate.runner import alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


async def _database_state(url: str) -> dict[str, Any]:
    async with plain_connection(url) as conn:
        versions = await conn.fetch("SELECT version_num FROM alembic_version")
        users = await conn.fetch("SELECT username, is_superuser FROM users")
    return {
        "versions": [row["version_num"] for row in versions],
        "users": [(row["username"], row["is_superuser"]) for row in users],
    }


def test_migration_function_upgrades_a_fresh_database_then_applies_nothing(
    target: Target,
    migration_function: FunctionConfig,
    fresh_database_url: str,
    logs: Path,
) -> None:
    # given: an empty database and the deployed configuration (a first superuser to create)
    bundle = target.bundle("migration")
    config = migration_function.with_environment(DATABASE_URL=fresh_database_url, **SUPERUSER)
    before = file_list(bundle)

    # when: the trigger invokes it, and invokes it again (a re-run of the same release)
    with running_function(bundle, target.runtime, config, logs=logs, verbose=True) as function:
        first = function.invoke({})
        second = function.invoke({})
        stderr = function.stderr

    # then: the first run applied every revision in order and created the superuser...
    assert first.kind == "response", (first.error_type, first.body, function.stdout[-3000:])
    head_revisions = _head_revision_list()
    migrated = first.json()
    assert migrated["ok"] is True and migrated["action"] == "upgrade"
    assert migrated["from_revision"] is None
    assert migrated["to_revision"] == migrated["head"] == head_revisions[-1]
    assert migrated["applied"] == head_revisions
    assert migrated["superuser"] == {"username": "target_admin", "created": True}
    # ...the second found the database at head and changed nothing
    assert second.kind == "response", (second.error_type, second.body)
    again = second.json()
    assert again["ok"] is True
    assert again["from_revision"] == again["to_revision"] == head_revisions[-1]
    assert again["applied"] == []
    assert again["superuser"] == {"username": "target_admin", "created": False}
    assert asyncio.run(_database_state(fresh_database_url)) == {
        "versions": [head_revisions[-1]],
        "users": [("target_admin", True)],
    }

    # and the revision scripts (loaded by Alembic by path) ran from their shipped bytecode
    imports = VerboseImports.parse(stderr)
    versions = f"{bundle}/migrations/versions/__pycache__/"
    revision_bytecode = {path for path in imports.from_bytecode if path.startswith(versions)}
    assert len(revision_bytecode) == len(head_revisions)
    assert shipped_bytecode("lambda_app.handlers.migrate", bundle=bundle) & imports.from_bytecode
    assert imports.from_source == set()
    assert imports.bytecode_rejected == [] and imports.bytecode_writes == []
    assert file_list(bundle) == before
