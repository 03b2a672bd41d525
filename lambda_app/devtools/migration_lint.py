"""The migration lint gate (`make lint`): each revision's SQL, checked by squawk.

A release runs the migrations while the previous code still serves traffic, so a revision
must not lock a busy table for long, rewrite it, or break the code released before it.
Each revision is rendered offline, on its own (`alembic upgrade <down>:<rev> --sql`, in
process, no database: `migrations/env.py` renders the PostgreSQL dialect), and squawk
lints that SQL. Every finding fails the gate, except:

- the rules in `NOT_CHECKED`, project-wide, each with its reason;
- a revision's own exceptions, declared in the revision module with a reason each:

      squawk_ignore = {"ban-drop-column": "contract: no release since 0007 reads it"}

  The gate writes them as squawk's `-- squawk-ignore-file` comment at the top of that
  revision's SQL. A declaration without a reason, one squawk finds nothing for (stale),
  or a `squawk-ignore` comment of the revision's own making (it could carry no reason)
  fails the gate.

    python -m lambda_app.devtools.migration_lint [--version-location DIR] [REVISION ...]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory

from lambda_app.migrate.runner import alembic_config, migrations_dir

PG_VERSION = "17"
EXCEPTIONS_ATTRIBUTE = "squawk_ignore"
RULE_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# Alembic opens each revision's part of the script with this comment.
RUNNING_UPGRADE = re.compile(r"^-- Running upgrade .* -> (?P<revision>\S+)$", re.MULTILINE)

# Rules that don't fit this project, for every revision. Each reason must still hold.
NOT_CHECKED: dict[str, str] = {
    "prefer-bigint-over-int": (
        "integer ids and counters are deliberate: the API bounds ids at 2**31-1 "
        "(a PostgreSQL integer); a later widening is a type change, which "
        "changing-column-type flags when it is written"
    ),
    "prefer-text-field": (
        "String(n) lengths are the API's own validation limits, kept in the schema; "
        "changing one later is a type change, which changing-column-type flags"
    ),
    "require-statement-timeout": (
        "the migration function bounds every statement by the run's deadline, on the server "
        "(statement_timeout, lambda_app/migrate/timeouts.py); an index build or a backfill "
        "may take minutes"
    ),
    "require-lock-timeout": (
        "belongs to the runner, not to each revision: the migration session sets "
        "lock_timeout (lambda_app/migrate/lock.py, DDL_LOCK_TIMEOUT_SECONDS) before any "
        "revision runs, and lifts it around each concurrent index statement "
        "(CONCURRENT_INDEX_DDL), which a revision's own SQL does not show"
    ),
}


@dataclass(frozen=True)
class Finding:
    path: Path  # the revision file
    rule: str  # squawk's rule name, or `squawk_ignore` for a bad exception
    message: str
    statement: str = ""  # the SQL line squawk points at

    def __str__(self) -> str:
        text = f"{_shown(self.path)}: {self.rule}: {self.message}"
        return f"{text}\n    {self.statement}" if self.statement else text


class SquawkFailed(RuntimeError):
    """squawk itself failed (not: it found something)."""


def scripts_config(extra_version_locations: Sequence[Path] = ()) -> Config:
    """The shipped scripts (migrations/env.py and its revisions), plus other folders."""
    config = alembic_config()
    if extra_version_locations:
        config.set_main_option("path_separator", "os")
        locations = [migrations_dir() / "versions", *extra_version_locations]
        config.set_main_option("version_locations", os.pathsep.join(map(str, locations)))
    return config


def render_upgrade_sql(config: Config, script: Script) -> str:
    """The SQL `alembic upgrade <down>:<rev> --sql` prints for this revision alone: its
    transaction, its statements, its alembic_version update. Alembic's own set-up before
    it (the alembic_version table, on the first revision) is left out."""
    down = script.down_revision
    start = down if isinstance(down, str) else (down[0] if down else None)
    buffer = io.StringIO()
    previous, config.output_buffer = config.output_buffer, buffer
    try:
        command.upgrade(config, f"{start}:{script.revision}" if start else script.revision, True)
    finally:
        config.output_buffer = previous
    sql = buffer.getvalue()
    # Only the last part: a merge revision's range also renders the other branch.
    markers = list(RUNNING_UPGRADE.finditer(sql))
    if not markers or markers[-1]["revision"] != script.revision:
        raise RuntimeError(f"no upgrade to {script.revision} in Alembic's offline output")
    opened = "BEGIN;" in sql[: markers[-1].start()]  # transaction_per_migration
    return ("BEGIN;\n\n" if opened else "") + sql[markers[-1].start() :]


def declared_exceptions(script: Script) -> tuple[dict[str, str], list[Finding]]:
    """The revision's `squawk_ignore` exceptions, and what is wrong with them."""
    path = Path(script.path)
    declared = getattr(script.module, EXCEPTIONS_ATTRIBUTE, {})
    if not isinstance(declared, dict):
        return {}, [_bad_exception(path, "must be a dict of {rule: reason}")]
    exceptions: dict[str, str] = {}
    problems: list[Finding] = []
    for rule, reason in declared.items():
        if not isinstance(rule, str) or not RULE_NAME.match(rule):
            problems.append(_bad_exception(path, f"{rule!r} is not a squawk rule name"))
        elif not isinstance(reason, str) or not reason.strip():
            problems.append(_bad_exception(path, f"{rule}: an exception needs a reason"))
        else:
            exceptions[rule] = reason
    return exceptions, problems


def lint_revision(config: Config, script: Script, *, squawk: str | None = None) -> list[Finding]:
    path = Path(script.path)
    name = f"{path.stem}.sql"
    exceptions, problems = declared_exceptions(script)
    sql = render_upgrade_sql(config, script)
    if "squawk-ignore" in sql:
        problems.append(
            _bad_exception(
                path,
                "a squawk-ignore comment in the revision's SQL; declare "
                f"{EXCEPTIONS_ATTRIBUTE} = {{rule: reason}} instead",
            )
        )
    if exceptions:
        # squawk says nothing of an ignore comment with nothing to ignore: a stale exception
        # would outlive the statement it was written for.
        found = {str(item["rule_name"]) for item in _squawk(sql, name=name, squawk=squawk)}
        problems += [
            _bad_exception(path, f"{rule}: squawk finds nothing to ignore; drop the exception")
            for rule in sorted(exceptions.keys() - found)
        ]
        sql = f"-- squawk-ignore-file {', '.join(sorted(exceptions))}\n{sql}"
    lines = sql.splitlines()
    findings = [
        Finding(path, str(item["rule_name"]), _message(item), _line(lines, item["line"]))
        for item in _squawk(sql, name=name, squawk=squawk)
    ]
    return problems + findings


def lint(config: Config, revisions: Iterable[str] | None = None) -> list[Finding]:
    """Every revision of `config`'s scripts (or the ones named), oldest first."""
    scripts = ScriptDirectory.from_config(config)
    if revisions is None:
        chosen = list(reversed(list(scripts.walk_revisions())))
    else:
        chosen = [_one(scripts, revision) for revision in revisions]
    squawk = squawk_executable()
    return [
        finding for script in chosen for finding in lint_revision(config, script, squawk=squawk)
    ]


def squawk_executable() -> str:
    """The squawk uv.lock pins, beside this Python (.venv/bin), else one on PATH."""
    found = shutil.which("squawk", path=str(Path(sys.executable).parent)) or shutil.which("squawk")
    if found is None:
        raise SquawkFailed("squawk not found: run `make install` (squawk-cli is a dev dependency)")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lambda_app.devtools.migration_lint",
        description="Lint each migration's SQL with squawk (rendered offline, no database).",
    )
    parser.add_argument("revisions", nargs="*", metavar="REVISION", help="default: every one")
    parser.add_argument(
        "--version-location",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="another folder of revisions, after migrations/versions",
    )
    args = parser.parse_args(argv)
    config = scripts_config(args.version_location)
    findings = lint(config, args.revisions or None)
    for finding in findings:
        print(finding)
    if findings:
        print(
            f"migration lint: {len(findings)} problem(s); see docs/migrations-and-releases.md"
            "#linting-migrations",
            file=sys.stderr,
        )
        return 1
    return 0


def _squawk(sql: str, *, name: str, squawk: str | None) -> list[dict[str, object]]:
    excluded = ",".join(sorted(NOT_CHECKED))
    with tempfile.TemporaryDirectory(prefix="migration-lint-") as folder:
        sql_file = Path(folder) / name
        sql_file.write_text(sql, encoding="utf-8")
        # No --assume-in-transaction: the rendered SQL has Alembic's own BEGIN/COMMIT, so
        # squawk sees an autocommit block (a concurrent index build) outside them.
        done = subprocess.run(  # noqa: S603 (our arguments, no shell)
            [
                squawk or squawk_executable(),
                "--pg-version",
                PG_VERSION,
                "--reporter",
                "json",
                "--exclude",
                excluded,
                str(sql_file),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode not in (0, 1):
        raise SquawkFailed(f"squawk exited with {done.returncode}: {done.stderr.strip()}")
    try:
        items = json.loads(done.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise SquawkFailed(f"squawk's output is not JSON: {done.stdout[:500]!r}") from exc
    if not isinstance(items, list):
        raise SquawkFailed(f"squawk's output is not a list: {done.stdout[:500]!r}")
    return items


def _message(item: dict[str, object]) -> str:
    message = str(item.get("message", "")).strip()
    hint = item.get("help")
    return f"{message} ({hint})" if hint else message


def _line(lines: list[str], number: object) -> str:
    index = number if isinstance(number, int) else -1
    return lines[index].strip() if 0 <= index < len(lines) else ""


def _one(scripts: ScriptDirectory, revision: str) -> Script:
    script = scripts.get_revision(revision)
    if script is None:
        raise SystemExit(f"no revision {revision!r}")
    return script


def _bad_exception(path: Path, message: str) -> Finding:
    return Finding(path, EXCEPTIONS_ATTRIBUTE, message)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
