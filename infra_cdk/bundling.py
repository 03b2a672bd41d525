"""Build the Lambda bundle on this machine, without Docker.

The bundle is what `/var/task` holds on Lambda:

    lambda_app/      the application (without lambda_app/local/: dev-only tools)
    migrations/      Alembic's scripts, found by lambda_app.migrations_runner
    <packages>       the runtime dependencies from uv.lock, as binary wheels for the
                     target platform and Python version (boto3 is not among them: the
                     Lambda runtime provides it)
    **/__pycache__   bytecode compiled by the *target* Python version, so cold starts
                     skip compilation (the bundle is read-only on Lambda)

CDK calls `LocalPythonBundler.try_bundle` when it needs the asset; a failure raises
(returning False would make CDK fall back to Docker, which this project never uses).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, IgnoreMode, ILocalBundling
from aws_cdk import aws_lambda as lambda_

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# What the asset (and so its hash) is made of: a change anywhere else in the repo
# does not produce a new function version or re-run the migrations.
ASSET_SOURCES = ("lambda_app", "migrations", "uv.lock", "pyproject.toml")
ASSET_EXCLUDES = [
    "/*",
    *(f"!/{name}" for name in ASSET_SOURCES),
    "__pycache__/",
    "*.pyc",
    "/lambda_app/local/",
]
APP_DIRS_LEFT_OUT = ("local",)  # lambda_app/local: embedded PostgreSQL and dev servers

# Bump when the bundling steps change, so a new recipe yields a new asset hash.
BUNDLER_VERSION = "1"


class BundlingError(RuntimeError):
    pass


@dataclass(frozen=True, kw_only=True)
class BundleTarget:
    python_version: str  # "3.13"
    platform: str  # uv's --python-platform, e.g. "aarch64-manylinux_2_28"
    # Where the bundle lives at run time: the paths tracebacks show.
    runtime_root: str = "/var/task"

    def describe(self) -> str:
        return f"cp{self.python_version.replace('.', '')} {self.platform}"


# What the functions run on: Lambda's python3.13 runtime on Graviton (arm64). That
# runtime is Amazon Linux 2023 (glibc 2.34), so manylinux_2_28 wheels run on it; the
# older manylinux2014 (glibc 2.17) tag alone would miss wheels in the lock file
# (argon2-cffi-bindings ships manylinux_2_26+ wheels only).
GLIBC_TAG = "manylinux_2_28"
LAMBDA_TARGET = BundleTarget(python_version="3.13", platform=f"aarch64-{GLIBC_TAG}")


def local_target(runtime_root: str) -> BundleTarget:
    """A bundle this machine can run (the bundle test executes it here)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return BundleTarget(
        python_version=version,
        platform=f"{platform.machine()}-{GLIBC_TAG}",
        runtime_root=runtime_root,
    )


@dataclass(frozen=True)
class BundleReport:
    target: BundleTarget
    unzipped_bytes: int
    zipped_bytes: int

    def summary(self) -> str:
        return (
            f"Lambda bundle ({self.target.describe()}): {_mb(self.unzipped_bytes)} unzipped, "
            f"{_mb(self.zipped_bytes)} zipped (Lambda limits: 250 MB unzipped, 50 MB zipped upload)"
        )


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


# --- tools ---------------------------------------------------------------------------


def find_uv(project_root: Path = PROJECT_ROOT) -> str:
    """The uv the Makefile installs (.tools/bin/uv), else one on PATH."""
    pinned = project_root / ".tools" / "bin" / "uv"
    if pinned.is_file():
        return str(pinned)
    found = shutil.which("uv")
    if found:
        return found
    raise BundlingError("uv not found: run `make install` (it installs .tools/bin/uv)")


def _python_candidates(version: str) -> list[str]:
    candidates = []
    if explicit := os.environ.get("LAMBDA_BUNDLE_PYTHON"):
        candidates.append(explicit)
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        candidates.append(sys.executable)
    if on_path := shutil.which(f"python{version}"):
        candidates.append(on_path)
    # A pyenv shim on PATH only works when that version is selected; try the real binaries.
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(
        str(p) for p in pyenv_root.glob(f"versions/{version}*/bin/python{version}")
    )
    return candidates


def _python_version_of(executable: str) -> str | None:
    try:
        result = subprocess.run(  # noqa: S603 (a path we looked up, no shell)
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def find_python(version: str) -> str:
    """An interpreter of exactly `version`: bytecode is only valid for the version that made it."""
    for candidate in _python_candidates(version):
        if _python_version_of(candidate) == version:
            return candidate
    raise BundlingError(
        f"python{version} not found: the Lambda bundle's bytecode must be compiled by the "
        f"runtime's Python version. Install Python {version} (or set LAMBDA_BUNDLE_PYTHON "
        f"to its path) and synthesize again."
    )


def _run(command: list[str], *, cwd: Path | None = None) -> None:
    # Our own argument lists (tool paths we looked up), never a shell.
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise BundlingError(
            f"bundling step failed ({result.returncode}): {' '.join(command)}\n"
            f"{result.stdout[-4000:]}{result.stderr[-4000:]}"
        )


# --- steps ---------------------------------------------------------------------------


def install_dependencies(
    *, uv: str, python: str, project_root: Path, target: BundleTarget, out: Path
) -> None:
    """The runtime dependency group exactly as uv.lock pins it, as wheels for the target."""
    with tempfile.TemporaryDirectory(prefix="lambda-bundle-") as scratch:
        requirements = Path(scratch) / "requirements.txt"
        _run(
            [
                uv,
                "export",
                "--frozen",
                "--no-default-groups",
                "--no-emit-project",
                "--no-hashes",
                "--no-header",
                "--no-annotate",
                "--output-file",
                str(requirements),
            ],
            cwd=project_root,
        )
        _run(
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--link-mode",
                "copy",
                "--python",
                python,
                "--target",
                str(out),
                "--python-platform",
                target.platform,
                "--python-version",
                target.python_version,
                "--only-binary",
                ":all:",
                "--requirements",
                str(requirements),
            ],
            cwd=project_root,
        )
    # Console scripts (they carry this machine's interpreter path), C headers and the
    # dependencies' own test suites: nothing on Lambda runs or includes them.
    for unused in (out / "bin", out / "include", *out.glob("*/tests")):
        shutil.rmtree(unused, ignore_errors=True)


def copy_sources(*, project_root: Path, out: Path) -> None:
    ignore_caches = shutil.ignore_patterns("__pycache__", "*.pyc")

    def ignore_app(directory: str, names: list[str]) -> set[str]:
        left_out = set(ignore_caches(directory, names))
        if Path(directory) == project_root / "lambda_app":
            left_out |= set(APP_DIRS_LEFT_OUT) & set(names)
        return left_out

    shutil.copytree(project_root / "lambda_app", out / "lambda_app", ignore=ignore_app)
    shutil.copytree(project_root / "migrations", out / "migrations", ignore=ignore_caches)


def compile_bytecode(*, python: str, target: BundleTarget, out: Path) -> None:
    # unchecked-hash: the .pyc files are trusted without stat-ing sources (mtimes in a
    # zip are meaningless, and the bundle is read-only so Python could not rewrite them).
    _run(
        [
            python,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            "-d",
            target.runtime_root,
            str(out),
        ]
    )


def measure(out: Path) -> tuple[int, int]:
    files = [path for path in sorted(out.rglob("*")) if path.is_file()]
    unzipped = sum(path.stat().st_size for path in files)
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                archive.write(path, path.relative_to(out))
        zipped = handle.tell()
    return unzipped, zipped


def build_bundle(
    out: Path, *, target: BundleTarget, project_root: Path = PROJECT_ROOT
) -> BundleReport:
    """Fill the empty directory `out` with a runnable bundle for `target`."""
    python = find_python(target.python_version)  # first: fail before any download
    uv = find_uv(project_root)
    install_dependencies(uv=uv, python=python, project_root=project_root, target=target, out=out)
    copy_sources(project_root=project_root, out=out)
    compile_bytecode(python=python, target=target, out=out)
    unzipped, zipped = measure(out)
    return BundleReport(target=target, unzipped_bytes=unzipped, zipped_bytes=zipped)


@jsii.implements(ILocalBundling)
class LocalPythonBundler:
    """CDK's hook for bundling on the host instead of in a Docker container."""

    def __init__(self, *, target: BundleTarget, project_root: Path = PROJECT_ROOT) -> None:
        self.target = target
        self.project_root = project_root

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        report = build_bundle(Path(output_dir), target=self.target, project_root=self.project_root)
        print(report.summary(), file=sys.stderr)
        return True


def lambda_code(
    *, target: BundleTarget = LAMBDA_TARGET, project_root: Path = PROJECT_ROOT
) -> lambda_.Code:
    """The functions' code: one asset, bundled locally, hashed from its sources only."""
    return lambda_.Code.from_asset(
        str(project_root),
        exclude=ASSET_EXCLUDES,
        ignore_mode=IgnoreMode.GIT,
        # SOURCE: the hash comes from the files above plus the bundling options, so
        # it is known before bundling and unchanged sources skip the bundling step.
        asset_hash_type=AssetHashType.SOURCE,
        bundling=BundlingOptions(
            # Never pulled or run: local bundling always succeeds or raises.
            image=DockerImage.from_registry("local-bundling-only"),
            local=LocalPythonBundler(target=target, project_root=project_root),
            # Part of the asset hash: a change of target or recipe is a new asset.
            environment={
                "BUNDLE_TARGET": target.describe(),
                "BUNDLER_VERSION": BUNDLER_VERSION,
            },
        ),
    )
