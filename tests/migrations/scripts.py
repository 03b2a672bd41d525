"""The Alembic scripts the migration tests run, and what to expect of the real ones.

Expectations are read from the real script directory, never written here as revision
ids or counts: adding a revision must not break a test.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from lambda_app.migrate.runner import alembic_config, migrations_dir

# Test-only revisions, after the real ones: 9001 (fine), then 9002 (creates a table, then
# fails inside the database). 9001 attaches itself to the real head.
FAILING_REVISIONS = Path(__file__).resolve().parent / "failing"


def real_revisions() -> list[str]:
    """The real revision ids, in the order an upgrade applies them."""
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def real_head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "migrations/versions has no revision"
    return head


def with_failing_revisions() -> Config:
    """The real scripts (env.py and every revision), then the failing ones."""
    config = alembic_config()
    config.set_main_option("path_separator", "os")
    locations = [migrations_dir() / "versions", FAILING_REVISIONS]
    config.set_main_option("version_locations", os.pathsep.join(map(str, locations)))
    return config
