"""The migration lint gate (`make lint`): what squawk flags in a revision's SQL fails it.

Each revision under lint_cases/ breaks one rule (or shows an exception); the gate renders it
through migrations/env.py's offline mode, as it renders the real ones. No database.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from lambda_app.devtools import migration_lint
from lambda_app.devtools.migration_lint import Finding, lint, render_upgrade_sql, scripts_config
from lambda_app.migrate.lock import is_concurrent_index_ddl
from tests.migrations.scripts import real_revisions

LINT_CASES = Path(__file__).resolve().parent / "lint_cases"
RECIPE = "8020"  # the concurrent-index recipe (docs/migrations-and-releases.md)


def lint_case(revision: str) -> list[Finding]:
    return lint(scripts_config([LINT_CASES]), [revision])


def case_file(revision: str) -> Path:
    (path,) = LINT_CASES.glob(f"{revision}_*.py")
    return path


@pytest.mark.parametrize(
    ("revision", "rule"),
    [
        pytest.param("8001", "adding-required-field", id="not-null-column-without-default"),
        pytest.param("8002", "require-concurrent-index-creation", id="index-without-concurrently"),
        pytest.param("8003", "renaming-column", id="column-renamed"),
        pytest.param("8004", "renaming-table", id="table-renamed"),
        pytest.param("8005", "ban-drop-column", id="column-dropped"),
        pytest.param("8006", "ban-drop-table", id="table-dropped"),
        pytest.param("8007", "changing-column-type", id="type-change-rewrites-the-table"),
        pytest.param("8008", "constraint-missing-not-valid", id="check-without-not-valid"),
        pytest.param("8009", "adding-foreign-key-constraint", id="foreign-key-without-not-valid"),
        pytest.param(
            "8010",
            "ban-concurrent-index-creation-in-transaction",
            id="anything-else: concurrently-inside-the-transaction",
        ),
    ],
)
def test_a_revision_that_breaks_a_rule_fails_naming_it(revision: str, rule: str) -> None:
    findings = lint_case(revision)

    assert rule in {finding.rule for finding in findings}, findings
    flagged = next(finding for finding in findings if finding.rule == rule)
    assert flagged.path == case_file(revision)
    assert flagged.message and flagged.statement  # squawk's message, and the SQL it points at


def test_the_gate_prints_the_revision_file_and_squawks_message(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(LINT_CASES.parents[2])

    exit_code = migration_lint.main(["--version-location", str(LINT_CASES), "8005"])

    assert exit_code == 1
    out = capsys.readouterr().out
    shown = "tests/migrations/lint_cases/8005_drop_column.py: ban-drop-column: Dropping a column"
    assert shown in out
    assert "ALTER TABLE users DROP COLUMN last_name" in out


def test_the_index_recipe_passes() -> None:
    # autocommit_block: drop if exists, create if not exists, both concurrently
    # (docs/migrations-and-releases.md)
    assert lint_case(RECIPE) == []


def test_every_concurrent_index_statement_waits_without_the_ddl_lock_timeout() -> None:
    # The runner lifts the DDL lock timeout for the concurrent index statements it
    # recognizes (lambda_app/migrate/lock.py): each such statement of the revisions, and of
    # the recipe, must be one, or any older transaction in the database would fail it.
    config = scripts_config([LINT_CASES])
    scripts = ScriptDirectory.from_config(config)
    concurrent = [
        statement
        for revision in [*real_revisions(), RECIPE]
        for statement in render_upgrade_sql(config, scripts.get_revision(revision)).split(";\n")
        if "CONCURRENTLY" in statement.upper()
    ]

    assert len(concurrent) >= 2, concurrent  # the recipe's drop and build, at least
    assert all(is_concurrent_index_ddl(statement) for statement in concurrent), concurrent


def test_an_exception_with_a_reason_passes() -> None:
    assert lint_case("8030") == []


@pytest.mark.parametrize(
    ("revision", "problem"),
    [
        pytest.param("8031", "ban-drop-column: an exception needs a reason", id="empty-reason"),
        pytest.param("8032", "squawk-ignore comment in the revision's SQL", id="comment-in-sql"),
        pytest.param("8033", "ban-drop-table: squawk finds nothing to ignore", id="stale"),
    ],
)
def test_an_exception_without_a_reason_fails(revision: str, problem: str) -> None:
    findings = lint_case(revision)

    bad = [finding for finding in findings if finding.rule == "squawk_ignore"]
    assert bad and problem in bad[0].message, findings
    assert bad[0].path == case_file(revision)


def test_the_current_revisions_pass() -> None:
    assert lint(scripts_config()) == []


def test_every_rule_left_unchecked_says_why() -> None:
    assert all(reason.strip() for reason in migration_lint.NOT_CHECKED.values())
