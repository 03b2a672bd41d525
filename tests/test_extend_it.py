"""Adding a revision the way the README's "Extend it" recipe does breaks no migration test.

In a copy of the repository (the copy's code, this checkout's .venv), it adds the recipe's
notes model (renamed, where the repository has the recipe's own already), has Alembic
write the revision against a fresh database and check it, then runs the migration tests.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from lambda_app.devtools import database as devtools_database
from lambda_app.devtools.database import drop_database, ensure_database
from tests.migrations.scripts import real_revisions

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("lambda_app", "migrations", "tests", "pyproject.toml")
STEP_SECONDS = 120  # per command; the whole test takes well under a minute

README = ROOT / "README.md"


def readme_note_model() -> str:
    """README, "Extend it", step 1: the model's code, as the reader copies it."""
    step = README.read_text().split("**1. The model.**", 1)[1]
    found = re.search(r"```python\n(.*?)```", step, re.DOTALL)
    assert found, "README.md: step 1 of Extend it shows no model"
    return found[1]


def copy_repository(target: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache", ".mypy_cache")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        else:
            shutil.copy2(source, target / name)
    # The recipe's commands name .venv/bin/...: this checkout's environment.
    (target / ".venv").symlink_to(ROOT / ".venv")
    return target


def add_note_model(repository: Path) -> str:
    """Step 1: the model, exported from lambda_app/models so Alembic sees it; its table.

    Where someone followed the recipe already (the repository has its notes), the copy
    gets the recipe's model once more under another name, as a second domain would be."""
    models = repository / "lambda_app" / "models"
    model, module, table = readme_note_model(), "note", "notes"
    if (models / "note.py").exists():
        model = model.replace("class Note(", "class WalkthroughNote(")
        model = model.replace('"notes"', '"walkthrough_notes"')
        module, table = "walkthrough_note", "walkthrough_notes"
    assert not (models / f"{module}.py").exists(), f"lambda_app/models/{module}.py exists"
    (models / f"{module}.py").write_text(model)
    name = re.search(r"^class (\w+)\(", model, re.MULTILINE)
    assert name, "README.md: step 1's model defines no class"
    init = (models / "__init__.py").read_text()
    last_import = "from lambda_app.models.user import User\n"
    assert last_import in init and "__all__ = [" in init, "lambda_app/models/__init__.py moved on"
    init = init.replace(
        last_import, f"{last_import}from lambda_app.models.{module} import {name[1]}\n"
    )
    (models / "__init__.py").write_text(init.replace("__all__ = [", f'__all__ = ["{name[1]}", '))
    return table


@pytest.fixture
def extend_database(admin_url: str) -> Iterator[tuple[str, str]]:
    """A fresh database for the recipe (its development database), and a test database
    suffix of its own for the copy's test run; both dropped afterwards."""
    token = uuid.uuid4().hex[:10]
    name, suffix = f"lambda_app_extend_{token}", f"_extend_{token}"
    url = devtools_database.database_url(admin_url, name)
    asyncio.run(ensure_database(admin_url, name))
    with mock.patch.dict(os.environ, {"DATABASE_URL": url, "TEST_DATABASE_SUFFIX": suffix}):
        copy_test_database = devtools_database.test_database_name()
    try:
        yield url, suffix
    finally:
        for database in (name, copy_test_database):
            asyncio.run(drop_database(admin_url, database))


def test_a_new_revision_breaks_no_migration_test(
    extend_database: tuple[str, str], tmp_path: Path
) -> None:
    url, suffix = extend_database
    repository = copy_repository(tmp_path / "repository")
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FIRST_SUPERUSER_")},
        "DATABASE_URL": url,  # the recipe's `export DATABASE_URL=...`
        "PYTHONPATH": str(repository),
        "TEST_DATABASE_SUFFIX": suffix,
    }

    def run(*command: str) -> str:
        done = subprocess.run(
            command,
            cwd=repository,
            env=environment,
            capture_output=True,
            text=True,
            timeout=STEP_SECONDS,
            check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{' '.join(command)}:\n{output[-5000:]}"
        return output

    # given: the model, and the development database at the real head
    table = add_note_model(repository)
    run(".venv/bin/python", "-m", "lambda_app", "migrate", "upgrade")

    # when: Alembic writes the revision and it is applied and checked, as the README says
    rev_id = f"{len(real_revisions()) + 1:04d}"  # the next in the 0001, 0002, ... series
    message = f"add {table}"
    run(".venv/bin/alembic", "revision", "--autogenerate", "--rev-id", rev_id, "-m", message)
    run(".venv/bin/alembic", "upgrade", "head")
    assert "No new upgrade operations detected" in run(".venv/bin/alembic", "check")

    # then: the revision creates the table, and the migration tests pass with it
    revision = repository / "migrations" / "versions" / f"{rev_id}_add_{table}.py"
    assert f"create_table('{table}'" in revision.read_text().replace('"', "'")
    tests = run(
        ".venv/bin/python",
        "-m",
        "pytest",
        "tests/handlers/test_migrate.py",
        "tests/migrations",
        "-q",
        "-p",
        "no:cacheprovider",
    )
    assert " passed" in tests.splitlines()[-1], tests  # and none failed: the exit code was 0
