"""The local bundler: both flavours built for this machine once, run by a bare interpreter."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
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
from tests import system_tools
from tests.infra.conftest import Bundle
from tests.infra.elf import debug_sections

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
# Every top-level entry of each bundle, by name: a distribution's .dist-info folder
# (`foo-1.2.dist-info`) and its packages, modules and extensions count as a name each
# (`_top_level`). A new entry (a dependency, a tool) fails here until it is added on
# purpose. boto3 and botocore are not among them: the Lambda runtime provides them.
API_TOP_LEVEL = {
    "lambda_app",
    # [project] dependencies (pyproject.toml) and theirs, by import and distribution name
    "_argon2_cffi_bindings",
    "_cffi_backend",
    "annotated_doc",
    "annotated_types",
    "anyio",
    "argon2",
    "argon2_cffi",
    "argon2_cffi_bindings",
    "asyncpg",
    "cffi",
    "dns",  # imported by email_validator
    "dnspython",
    "dotenv",
    "email_validator",
    "fastapi",
    "greenlet",
    "idna",
    "jwt",
    "mangum",
    "multipart",
    "opentelemetry",  # imported by FastAPI, though it looks optional
    "opentelemetry_api",
    "pwdlib",
    "pycparser",
    "pydantic",
    "pydantic_core",
    "pydantic_settings",
    "pyjwt",
    "python_dotenv",
    "python_multipart",
    "sqlalchemy",
    "starlette",
    "typing_extensions",
    "typing_inspection",
}
MIGRATION_TOP_LEVEL = API_TOP_LEVEL | {
    "migrations",
    # the `migration` dependency group: Alembic, and Mako (with MarkupSafe) for its templates
    "alembic",
    "mako",
    "markupsafe",
}
TOP_LEVEL = {"api": API_TOP_LEVEL, "migration": MIGRATION_TOP_LEVEL}
# What each bundle ships of lambda_app/, and of lambda_app/handlers/.
APP = {
    "api": {
        "__init__.py",
        "main.py",
        "workload.py",
        "core",
        "db",
        "models",
        "mail",
        "identity",
        "users",
        "auth",
        "health",
        "docs_ui",
        "handlers",
    },
    "migration": {
        "__init__.py",
        "workload.py",
        "core",
        "db",
        "models",
        "identity",
        "mail",
        "users",
        "migrate",
        "handlers",
    },
}
HANDLERS = {
    "api": {
        "__init__.py",
        "api.py",
        "api_events.py",
        "pre_traffic.py",
        "pre_traffic_report.py",
        "rotate_signing_key.py",
    },
    "migration": {"__init__.py", "migrate.py"},
}
# Said outright, though the sets above imply it: no bundle ships the development tools
# (CLI, release script, local gateway, embedded PostgreSQL), and the API's no migration code.
NEVER_SHIPPED = ("lambda_app/devtools", "lambda_app/local", "lambda_app/__main__.py")
LEFT_OUT = {
    "api": (
        *NEVER_SHIPPED,
        "lambda_app/migrate",
        "lambda_app/handlers/migrate.py",
        "alembic",
        "mako",
        "migrations",
    ),
    "migration": NEVER_SHIPPED,
}
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


def test_bundling_finds_a_python_uv_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a CPython 3.13 only where `uv python install 3.13` puts one (the fix the
    # system tools check prints), none on PATH, no pyenv
    real = system_tools.find("python3.13")
    assert real is not None, system_tools.missing_message("python3.13")
    managed = tmp_path / ".local/share/uv/python/cpython-3.13.9-linux-x86_64-gnu/bin"
    managed.mkdir(parents=True)
    (managed / "python3.13").symlink_to(real)
    for name in ("LAMBDA_BUNDLE_PYTHON", "UV_PYTHON_INSTALL_DIR", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))

    assert find_python("3.13") == str(managed / "python3.13")


def test_bundling_refuses_an_unknown_flavour(tmp_path: Path) -> None:
    with pytest.raises(BundlingError, match="unknown bundle flavour 'everything'"):
        build_bundle(tmp_path, target=LAMBDA_TARGET, flavour="everything")
    assert list(tmp_path.iterdir()) == []  # refused before any download


def _top_level(out: Path) -> set[str]:
    """The bundle's top-level entries by name: `foo-1.2.dist-info`, `foo.py` and
    `foo.cpython-313-aarch64-linux-gnu.so` are all `foo`. `__pycache__` is left to the
    bytecode test (it holds the top-level modules' bytecode)."""
    return {
        path.name if path.name.startswith(".") else path.name.split("-")[0].split(".")[0].lower()
        for path in out.iterdir()
        if path.name != "__pycache__"
    }


def _children(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir() if path.name != "__pycache__"}


def test_each_bundle_holds_exactly_its_functions_packages(any_bundle: Bundle) -> None:
    out, flavour = any_bundle.path, any_bundle.report.flavour
    assert _top_level(out) == TOP_LEVEL[flavour]
    assert _children(out / "lambda_app") == APP[flavour]
    assert _children(out / "lambda_app" / "handlers") == HANDLERS[flavour]
    assert [name for name in LEFT_OUT[flavour] if (out / name).exists()] == []


def test_every_app_import_in_a_bundle_is_shipped_in_it(any_bundle: Bundle) -> None:
    # A lazy import (inside a function) of a part the flavour does not ship would only
    # fail on Lambda, on the path that runs it: every one is checked here, statically.
    out = any_bundle.path
    sources = sorted((out / "lambda_app").rglob("*.py"))
    sources += sorted(out.glob("migrations/**/*.py"))
    missing = [
        f"{source.relative_to(out)}:{line} imports {module}"
        for source in sources
        for module, line in _app_imports(out, source)
        if not _is_module(out, module)
    ]
    assert missing == []
    assert len(sources) > 10  # the walk saw the app


def _is_module(root: Path, name: str) -> bool:
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _app_imports(root: Path, source: Path) -> Iterator[tuple[str, int]]:
    """The `lambda_app` modules `source` imports, at any depth (lazy imports too), except
    under `if TYPE_CHECKING:`. `from m import n` counts `m.n` when the project has such
    a module, whether or not the bundle does."""
    tree = ast.parse(source.read_text(encoding="utf-8"), str(source))
    for_type_checkers = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and _is_type_checking(block.test)
        for statement in block.body
        for node in ast.walk(statement)
    }
    package = list(source.relative_to(root).with_suffix("").parts)[:-1]
    for node in ast.walk(tree):
        if id(node) in for_type_checkers:
            continue
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            modules = [module]
            modules += [
                f"{module}.{alias.name}"
                for alias in node.names
                if _is_module(ROOT, f"{module}.{alias.name}")
            ]
        else:
            continue
        for module in modules:
            if module == "lambda_app" or module.startswith("lambda_app."):
                yield module, node.lineno


def test_api_bundle_keeps_the_postgresql_dialect_only(api_bundle: Bundle) -> None:
    out, report = api_bundle.path, api_bundle.report
    assert (out / "lambda_app" / "db" / "certs" / "rds-ca-bundle.pem").is_file()  # DB TLS
    assert (out / "lambda_app" / "docs_ui" / "static" / "swagger-ui-bundle.js").is_file()
    assert (out / "sqlalchemy" / "dialects" / "postgresql" / "asyncpg.py").is_file()
    for dialect in OTHER_DIALECTS:
        assert not (out / "sqlalchemy" / "dialects" / dialect).exists(), dialect
    assert 0 < report.zipped_bytes < report.unzipped_bytes


def test_migration_bundle_holds_alembic_its_templates_and_the_migrations(
    migration_bundle: Bundle, api_bundle: Bundle
) -> None:
    out, report = migration_bundle.path, migration_bundle.report
    assert (out / "migrations" / "env.py").is_file()
    assert (out / "migrations" / "script.py.mako").is_file()
    assert list((out / "migrations" / "versions").glob("0001_*.py"))
    # alembic.ddl imports every dialect it supports.
    for dialect in OTHER_DIALECTS:
        assert (out / "sqlalchemy" / "dialects" / dialect).is_dir(), dialect
    assert report.zipped_bytes > api_bundle.report.zipped_bytes


def test_bundles_leave_out_the_packages_tests_sources_and_stubs(any_bundle: Bundle) -> None:
    out = any_bundle.path
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
    assert (out / "lambda_app" / "__pycache__" / f"workload.{tag}.pyc").is_file()
    assert list((out / "sqlalchemy" / "__pycache__").glob(f"*.{tag}.pyc"))
    foreign = [p for p in out.rglob("*.pyc") if f".{tag}." not in p.name]
    assert foreign == []
    # Only the names an interpreter without -O loads, however the files were optimized.
    assert list(out.rglob("*.opt-*.pyc")) == []
    # Bytecode of shipped sources only (none of a module left out).
    orphans = [
        p.relative_to(out)
        for p in out.rglob("*.pyc")
        if not (p.parent.parent / f"{p.name.split('.')[0]}.py").is_file()
    ]
    assert orphans == []


def test_all_bundle_bytecode_is_unchecked_hash(any_bundle: Bundle) -> None:
    # In /var/task every file is dated 1980-01-01 (cdk-assets zips them so), so timestamp-checked
    # bytecode would be stale: recompiled in memory at every cold start (the folder is
    # read-only). The fixture builds with UV_COMPILE_BYTECODE=1, which would otherwise
    # leave uv's timestamp-checked bytecode on every dependency.
    unchecked_hash = 0b01  # PEP 552 flags: hash-based, source not checked
    modes = Counter(
        int.from_bytes(path.read_bytes()[4:8], "little") for path in any_bundle.path.rglob("*.pyc")
    )
    assert set(modes) == {unchecked_hash}, modes


def test_only_the_api_bundle_leaves_its_dependencies_docstrings_out(any_bundle: Bundle) -> None:
    # A docstring's text is in the bytecode only when it was compiled in.
    tag = sys.implementation.cache_tag
    session = any_bundle.path / "sqlalchemy" / "orm" / "__pycache__" / f"session.{tag}.pyc"
    dependency_docstring = b"Manages persistence operations for ORM-mapped objects."
    api_bundle = any_bundle.report.flavour == API.name
    assert (dependency_docstring in session.read_bytes()) is not api_bundle
    settings = any_bundle.path / "lambda_app" / "core" / "__pycache__" / f"settings.{tag}.pyc"
    assert b"The API function's settings, read once per process." in settings.read_bytes()


# A project tree with a file in each part of the app, and what a checkout has besides.
PROJECT_FILES = (
    "lambda_app/__init__.py",
    "lambda_app/__main__.py",
    "lambda_app/main.py",
    "lambda_app/workload.py",
    "lambda_app/core/settings.py",
    "lambda_app/db/engine.py",
    "lambda_app/models/user.py",
    "lambda_app/identity/passwords.py",
    "lambda_app/users/service.py",
    "lambda_app/auth/service.py",
    "lambda_app/health/router.py",
    "lambda_app/docs_ui/static/swagger-ui.css",
    "lambda_app/handlers/__init__.py",
    "lambda_app/handlers/api.py",
    "lambda_app/handlers/pre_traffic.py",
    "lambda_app/handlers/rotate_signing_key.py",
    "lambda_app/handlers/migrate.py",
    "lambda_app/migrate/runner.py",
    "lambda_app/devtools/cli.py",
    "lambda_app/devtools/gateway.py",
    "migrations/env.py",
    "migrations/versions/0001_init.py",
    "uv.lock",
    "pyproject.toml",
    "README.md",
    "tests/test_x.py",
    "infra_cdk/stack.py",
)


def _fingerprint(root: Path, flavour: Flavour) -> str:
    from aws_cdk import FileSystem, IgnoreMode

    return FileSystem.fingerprint(
        str(root), exclude=flavour.asset_excludes, ignore_mode=IgnoreMode.GIT
    )


@pytest.mark.parametrize(
    ("changed", "new_api_asset", "new_migration_asset"),
    [
        # What ships nowhere: the dev tools, the CLI entry, docs, tests, the CDK app, bytecode
        ("lambda_app/devtools/cli.py", False, False),
        ("lambda_app/devtools/gateway.py", False, False),
        ("lambda_app/__main__.py", False, False),
        ("lambda_app/__pycache__/main.cpython-311.pyc", False, False),
        ("lambda_app/core/__pycache__/settings.cpython-313.pyc", False, False),
        ("lambda_app/not_in_any_flavour.py", False, False),  # ships once a flavour names it
        ("README.md", False, False),
        ("tests/test_x.py", False, False),
        ("infra_cdk/stack.py", False, False),
        # The API's own code: a new API version, not a migration run
        ("lambda_app/main.py", True, False),
        ("lambda_app/auth/service.py", True, False),
        ("lambda_app/health/router.py", True, False),
        ("lambda_app/docs_ui/static/swagger-ui.css", True, False),
        ("lambda_app/handlers/api.py", True, False),
        ("lambda_app/handlers/pre_traffic.py", True, False),  # the hook runs from this asset
        ("lambda_app/handlers/rotate_signing_key.py", True, False),  # so does the rotation
        # The migration function's own: a new migration run, not a new API version
        ("lambda_app/migrate/runner.py", False, True),
        ("lambda_app/handlers/migrate.py", False, True),
        ("migrations/versions/0002_more.py", False, True),
        ("migrations/env.py", False, True),
        # What both ship
        ("lambda_app/__init__.py", True, True),
        ("lambda_app/workload.py", True, True),
        ("lambda_app/core/settings.py", True, True),
        ("lambda_app/db/engine.py", True, True),
        ("lambda_app/models/user.py", True, True),
        ("lambda_app/identity/passwords.py", True, True),
        ("lambda_app/users/service.py", True, True),
        ("lambda_app/handlers/__init__.py", True, True),
        ("uv.lock", True, True),
        ("pyproject.toml", True, True),
    ],
)
def test_asset_hash_covers_only_what_ships(
    tmp_path: Path, changed: str, new_api_asset: bool, new_migration_asset: bool
) -> None:
    # given: a project tree and each flavour's asset hash
    root = tmp_path / "project"
    for name in PROJECT_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"# {name}\n")
    before = {flavour.name: _fingerprint(root, flavour) for flavour in (API, MIGRATION)}

    # when: one file changes (or appears)
    (root / changed).parent.mkdir(parents=True, exist_ok=True)
    (root / changed).write_text("changed = True\n")

    # then: exactly the assets that ship it are new ones
    after = {flavour.name: _fingerprint(root, flavour) for flavour in (API, MIGRATION)}
    assert {name: after[name] != before[name] for name in after} == {
        "api": new_api_asset,
        "migration": new_migration_asset,
    }


def test_cdk_watch_skips_what_no_bundle_ships() -> None:
    # `cdk watch` redeploys on a change it sees: none for the dev tools, which ship nowhere.
    excluded = set(json.loads((ROOT / "cdk.json").read_text())["watch"]["exclude"])
    shipped = {part.split("/")[0] for flavour in FLAVOURS.values() for part in flavour.app_parts}
    never_shipped = {
        f"lambda_app/{path.name}/**" if path.is_dir() else f"lambda_app/{path.name}"
        for path in (ROOT / "lambda_app").iterdir()
        if path.name not in shipped and path.name != "__pycache__"
    }
    assert never_shipped <= excluded


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
        "lambda_app.migrate": "ModuleNotFoundError",
        "lambda_app.handlers.migrate": "ModuleNotFoundError",
        "lambda_app.devtools": "ModuleNotFoundError",
        "lambda_app.local": "ModuleNotFoundError",
    }
    # Bad input still gets the project's error shape without pydantic's 1.x API around.
    status, invalid = responses["invalid_register"]
    assert status == 422 and invalid["error"]["code"] == "validation_error"
    # The dependencies' docstrings and asserts are left out, the app's docstrings are not:
    # the OpenAPI document (descriptions from the endpoints' docstrings) is the source's.
    assert responses["compiled"] == {
        "dependency_docstrings": False,
        "dependency_asserts": False,
        "app_docstrings": True,
    }
    status, document = responses["openapi"]
    assert status == 200 and document == _source_openapi_document(database_url_for_tests)
    # Everything came from the bundle, nothing from this machine's site-packages.
    assert all(path.startswith(str(out)) for path in responses["imported_from"].values())
    assert responses["loaded_from_site_packages"] == []


def _source_openapi_document(database_url: str) -> dict[str, object]:
    """The document the source tree's app serves, with the bundle test's settings."""
    from lambda_app.main import create_app
    from tests.fixtures.settings import api_settings

    values = {name.lower(): value for name, value in BUNDLE_ENV_BASE.items()}
    return create_app(api_settings(**values, database_url=database_url)).openapi()


@pytest.fixture
def fresh_database_url(admin_url: str) -> Iterator[str]:
    """An empty database (no schema at all), dropped afterwards."""
    from lambda_app.devtools.database import (
        database_url,
        drop_database,
        ensure_database,
        test_database_name,
    )

    name = f"{test_database_name()}_bundle_migrate"
    asyncio.run(drop_database(admin_url, name))
    asyncio.run(ensure_database(admin_url, name))
    yield database_url(admin_url, name)
    asyncio.run(drop_database(admin_url, name))


def _head_revision_list() -> list[str]:
    """Every revision from base to head, in the order an upgrade applies them."""
    from alembic.script import ScriptDirectory

    from lambda_app.migrate.runner import alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


@pytest.mark.slow
def test_migration_handler_upgrades_a_fresh_database_from_the_migration_bundle_alone(
    migration_bundle: Bundle, fresh_database_url: str, tmp_path: Path
) -> None:
    # given: a bare interpreter with only the migration bundle importable, an empty
    # database, and a first superuser to create (the users and identity code it ships)
    out = migration_bundle.path
    superuser = {
        "FIRST_SUPERUSER_USERNAME": "bundle_admin",
        "FIRST_SUPERUSER_EMAIL": "bundle_admin@example.com",
        "FIRST_SUPERUSER_PASSWORD": "bundle-admin-password-1",
    }
    # when: the deploy's trigger invokes the migration function (empty event: upgrade)
    result = _run_in_bare_interpreter(
        "migration_driver.py",
        str(out),
        env={**BUNDLE_ENV_BASE, "DATABASE_URL": fresh_database_url, **superuser},
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
    assert migrated["superuser"] == {"username": "bundle_admin", "created": True}
    # The API's code and the dev tools are really absent: the migration works without them.
    assert outcome["missing"] == {
        "lambda_app.main": "ModuleNotFoundError",
        "lambda_app.auth": "ModuleNotFoundError",
        "lambda_app.devtools": "ModuleNotFoundError",
        "lambda_app.local": "ModuleNotFoundError",
    }
    assert all(path.startswith(str(out)) for path in outcome["imported_from"].values())
    assert outcome["loaded_from_site_packages"] == []
