"""Build the Lambda bundles on this machine, without Docker.

A bundle is what `/var/task` holds on Lambda:

    lambda_app/      the parts of the application this function runs (`Flavour.app_parts`)
    migrations/      Alembic's scripts, found by lambda_app.migrate.runner
                     (migration function only)
    <packages>       the function's dependencies from uv.lock: `[project] dependencies`,
                     plus its own dependency groups (`Flavour.dependency_groups`), as
                     binary wheels for the target platform and Python version (boto3 is
                     not among them: the Lambda runtime provides it)
    **/__pycache__   bytecode compiled by the *target* Python version, so cold starts
                     skip compilation (the bundle is read-only on Lambda)

One recipe, two flavours, each naming what goes in (`Flavour`), so a reader sees what
each function runs and a new package ships nowhere until a flavour names it: the API
function's bundle holds the HTTP app and no migration code, so it stays small; the
migration function's holds the migration runner, the code its superuser step shares
with the API (users, identity) and Alembic. Neither ships the development tools
(lambda_app/devtools, lambda_app/local, the `python -m lambda_app` CLI). Both leave out
what nothing reads at run time inside the packages they install (test suites, Cython
sources, type stubs) and the compiled extensions' debug info.

The recipe needs no CDK: `infra_cdk.lambda_code` plugs it into CDK assets, and the
benchmark builds its folders by the same rules without starting the jsii runtime.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
APP_PACKAGE = "lambda_app"

# Bump when the bundling steps change, so a new recipe yields a new asset hash.
BUNDLER_VERSION = "6"

# What no flavour runs or reads on Lambda, by path under the bundle root: uv's lock file
# for the target folder, console scripts (they carry this machine's interpreter path),
# C headers, the dependencies' own test suites and test harnesses (alembic's runtime
# never imports sqlalchemy.testing), and pydantic's copy of its 1.x API. Nothing in the
# bundles uses pydantic 1.x: FastAPI imports it only to reject 1.x models and takes its
# absence to mean there are none (fastapi._compat.shared), but with it present that check
# costs every cold start about 12 ms (README, Performance). pydantic 2 itself needs it
# only for classes with the 1.x `__get_validators__` hook, which nothing in the bundles uses.
UNUSED_PATHS = (
    ".lock",
    "bin",
    "include",
    "*/tests",
    "sqlalchemy/testing",
    "alembic/testing",
    "pydantic/v1",
)
# ...and by suffix: Cython sources and headers (the extensions are compiled already)
# and type stubs (for type checkers only).
UNUSED_SUFFIXES = (".pyx", ".pxd", ".c", ".h", ".pyi")

# SQLAlchemy's dialects for databases other than PostgreSQL. SQLAlchemy loads a dialect
# only when an engine URL names it, so the API never imports them; alembic.ddl imports
# every dialect it supports, so the migration bundle keeps them.
OTHER_DATABASES_DIALECTS = tuple(
    f"sqlalchemy/dialects/{name}" for name in ("mysql", "mssql", "oracle", "sqlite")
)


@dataclass(frozen=True)
class Flavour:
    """What one function's bundle holds, by name: nothing else goes in."""

    name: str
    # Under lambda_app/: packages (folders, whole) and single modules, with the parent
    # package's __init__.py named when only some of a package ships.
    app_parts: tuple[str, ...]
    # uv dependency groups installed on top of `[project] dependencies`.
    dependency_groups: tuple[str, ...] = ()
    # Folders of the project root copied as they are to the bundle root.
    data_dirs: tuple[str, ...] = ()
    # Globs under the bundle root removed after the install, besides UNUSED_PATHS.
    left_out: tuple[str, ...] = ()
    # True: the dependencies are compiled as `python -OO` compiles them, without their
    # docstrings and asserts. The app's own code always keeps both.
    optimize_dependencies: bool = False

    @property
    def asset_sources(self) -> tuple[str, ...]:
        """What the asset (and so its hash) is made of, the bundle's inputs and nothing
        else: a change anywhere else does not produce a new function version or re-run
        the migrations."""
        return (
            *(f"{APP_PACKAGE}/{part}" for part in self.app_parts),
            *self.data_dirs,
            "uv.lock",
            "pyproject.toml",
        )

    @property
    def asset_excludes(self) -> list[str]:
        """`asset_sources` as .gitignore rules (CDK's IgnoreMode.GIT).

        Git cannot re-include a path whose parent folder is excluded, so each folder on
        the way to a shipped part is re-included and its other children excluded again:
        `/*`, `!/lambda_app`, `/lambda_app/*`, `!/lambda_app/core`, ...
        """
        return [*_ship_only(self.asset_sources), "__pycache__/", "*.pyc"]


_PathTree = dict[str, "_PathTree"]  # a folder's children; a shipped part has none listed


def _ship_only(paths: tuple[str, ...]) -> list[str]:
    """.gitignore rules that exclude everything but `paths` (relative to the root)."""
    tree: _PathTree = {}
    for path in paths:
        node = tree
        for name in path.split("/"):
            node = node.setdefault(name, {})

    def rules(prefix: str, children: _PathTree) -> list[str]:
        found = [f"{prefix}/*"]
        for name, grandchildren in children.items():
            found.append(f"!{prefix}/{name}")
            if grandchildren:  # only some of this folder ships
                found += rules(f"{prefix}/{name}", grandchildren)
        return found

    return rules("", tree)


API = Flavour(
    name="api",
    app_parts=(
        "__init__.py",
        "main.py",  # create_app: the routers, the middleware, the docs UI
        "workload.py",
        "core",
        "db",
        "models",
        "mail",  # outgoing mail (SES on AWS): reset and verification links
        "identity",
        "users",
        "auth",
        "health",
        "docs_ui",
        "handlers/__init__.py",
        "handlers/api.py",
        "handlers/api_events.py",
        # CodeDeploy's pre-traffic check of a new version: its own small function,
        # from this same asset (stdlib and boto3 only).
        "handlers/pre_traffic.py",
        "handlers/pre_traffic_report.py",
        # Secrets Manager's rotation of the JWT signing key: its own small function from
        # this asset too (stdlib and boto3, and identity's keyring format it writes).
        "handlers/rotate_signing_key.py",
    ),
    left_out=OTHER_DATABASES_DIALECTS,
    # The dependencies' docstrings stay in memory for a process's life, over 4% of the
    # API function's peak RSS, and make a fifth of their bytecode; nothing the function
    # runs reads them. Docstrings go with asserts, as in `python -OO`, a mode Python
    # defines and libraries are expected to work in; docstrings alone is no such mode
    # (SQLAlchemy's `assert fn.__doc__` fails in it). The migration bundle keeps both:
    # Alembic reads its own docstrings, and that function runs once per release.
    optimize_dependencies=True,
)
MIGRATION = Flavour(
    name="migration",
    app_parts=(
        "__init__.py",
        "workload.py",
        "core",
        "db",
        "models",  # the MetaData migrations/env.py compares the schema with
        # The superuser step creates its user through the users service, which hashes
        # the password with identity's hasher. The same service sends verification
        # emails on an email change, hence mail, which the migration function never calls.
        "identity",
        "mail",
        "users",
        "migrate",
        "handlers/__init__.py",
        "handlers/migrate.py",
    ),
    dependency_groups=("migration",),  # Alembic, and Mako for its script templates
    data_dirs=("migrations",),
)
FLAVOURS = {flavour.name: flavour for flavour in (API, MIGRATION)}


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
    flavour: str
    unzipped_bytes: int
    zipped_bytes: int
    strip_tool: str | None  # None: no strip tool found, the extensions keep their debug info

    def summary(self) -> str:
        stripped = "" if self.strip_tool else ", debug info NOT stripped (no strip tool found)"
        return (
            f"Lambda bundle '{self.flavour}' ({self.target.describe()}): "
            f"{_mb(self.unzipped_bytes)} unzipped, {_mb(self.zipped_bytes)} zipped{stripped} "
            f"(Lambda limits: 250 MB unzipped, 50 MB zipped upload)"
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
    # `uv python install 3.13` (what tests/system_tools.py suggests): uv's own CPython
    # builds, in `uv python dir` (its bin folder, ~/.local/bin, is often not on PATH).
    data_home = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    uv_pythons = Path(os.environ.get("UV_PYTHON_INSTALL_DIR", data_home / "uv" / "python"))
    candidates += sorted(
        str(p)
        for p in uv_pythons.glob(f"cpython-{version}.*-*/bin/python{version}")
        if "+" not in p.parent.parent.name  # not a free-threaded or debug build
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


def _run(command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    # Our own argument lists (tool paths we looked up), never a shell.
    result = subprocess.run(  # noqa: S603
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BundlingError(
            f"bundling step failed ({result.returncode}): {' '.join(command)}\n"
            f"{result.stdout[-4000:]}{result.stderr[-4000:]}"
        )


# --- steps ---------------------------------------------------------------------------


def install_dependencies(
    *,
    flavour: Flavour,
    uv: str,
    python: str,
    project_root: Path,
    target: BundleTarget,
    out: Path,
) -> None:
    """The project's dependencies and the flavour's groups exactly as uv.lock pins them
    (and nothing from the default groups: dev and infra tools never ship), as wheels
    for the target."""
    groups = [argument for group in flavour.dependency_groups for argument in ("--group", group)]
    with tempfile.TemporaryDirectory(prefix="lambda-bundle-") as scratch:
        requirements = Path(scratch) / "requirements.txt"
        _run(
            [
                uv,
                "export",
                "--frozen",
                "--no-default-groups",
                *groups,
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
            # Wheels as they are: compile_bytecode makes the only bytecode. With uv's own
            # (UV_COMPILE_BYTECODE=1, which the Makefile exports and uv's Docker guide
            # suggests setting everywhere) the dependencies would ship timestamp-checked
            # .pyc files, stale in /var/task, where cdk-assets dates every file 1980-01-01.
            env={k: v for k, v in os.environ.items() if k != "UV_COMPILE_BYTECODE"},
        )


def prune(*, flavour: Flavour, out: Path) -> None:
    """Remove the files inside the installed packages that this flavour's function never
    imports or reads."""
    for pattern in (*UNUSED_PATHS, *flavour.left_out):
        for path in out.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    for path in [p for p in out.rglob("*") if p.suffix in UNUSED_SUFFIXES and p.is_file()]:
        path.unlink()


def strip_tool_candidates(target: BundleTarget) -> tuple[str, ...]:
    """Tools that can strip the target's ELF files, best first."""
    arch = target.platform.split("-", 1)[0]
    candidates = ["llvm-strip", f"{arch}-linux-gnu-strip"]  # any architecture; a cross-binutils
    if arch == platform.machine():
        candidates.append("strip")  # the host's own binutils only read the host's architecture
    return tuple(candidates)


def find_strip_tool(target: BundleTarget) -> str | None:
    for candidate in strip_tool_candidates(target):
        if found := shutil.which(candidate):
            return found
    return None


def shared_libraries(out: Path) -> list[Path]:
    return sorted(
        path
        for path in out.rglob("*.so*")
        if path.is_file() and (path.name.endswith(".so") or ".so." in path.name)
    )


def strip_debug_info(*, tool: str | None, target: BundleTarget, out: Path) -> None:
    """Drop the extensions' debug sections (asyncpg and SQLAlchemy ship them: megabytes
    nobody reads on Lambda). Only debug info: the symbols stay, tracebacks are unchanged."""
    libraries = shared_libraries(out)
    if not libraries:
        return
    if tool is None:
        print(
            f"warning: no strip tool for {target.platform} found on PATH (tried "
            f"{', '.join(strip_tool_candidates(target))}): the bundle keeps its extensions' "
            f"debug info and is bigger, but works. Install llvm (Debian: apt-get install llvm).",
            file=sys.stderr,
        )
        return
    _run([tool, "--strip-debug", *(str(path) for path in libraries)])


def copy_sources(*, flavour: Flavour, project_root: Path, out: Path) -> None:
    """The flavour's parts of the app, and its data folders, without bytecode."""
    ignore_caches = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in flavour.app_parts:
        source = project_root / APP_PACKAGE / part
        destination = out / APP_PACKAGE / part
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination, ignore=ignore_caches)
        elif source.is_file():
            shutil.copy2(source, destination)
        else:
            raise BundlingError(
                f"the {flavour.name} bundle ships {APP_PACKAGE}/{part}, which does not "
                f"exist: update its Flavour.app_parts in infra_cdk/bundling.py"
            )
    for name in flavour.data_dirs:
        shutil.copytree(project_root / name, out / name, ignore=ignore_caches)


def compile_bytecode(*, python: str, target: BundleTarget, out: Path, optimize: int = 0) -> None:
    """Compile every source under `out` with the target's interpreter. `optimize=2`: as
    `python -OO` compiles them, without docstrings and asserts (`Flavour.optimize_dependencies`)."""
    # unchecked-hash: the .pyc files are trusted without stat-ing sources (mtimes in a
    # zip are meaningless, and the bundle is read-only so Python could not rewrite them).
    # -f: every file, even one that already has bytecode (a wheel that ships some), or
    # compileall would keep that bytecode and its invalidation mode.
    _run(
        [
            python,
            "-m",
            "compileall",
            "-q",
            "-f",
            "-j",
            "0",
            "-o",
            str(optimize),
            "--invalidation-mode",
            "unchecked-hash",
            "-d",
            target.runtime_root,
            str(out),
        ]
    )
    if optimize:
        # The functions' interpreter runs without -O, so it loads the plain names only.
        # (A .pyc does not record how it was optimized: the names alone tell them apart.)
        suffix = f".opt-{optimize}.pyc"
        for path in out.rglob(f"*{suffix}"):
            path.replace(path.with_name(path.name.removesuffix(suffix) + ".pyc"))


def unzipped_size(out: Path) -> int:
    return sum(path.stat().st_size for path in out.rglob("*") if path.is_file())


def measure(out: Path) -> tuple[int, int]:
    files = [path for path in sorted(out.rglob("*")) if path.is_file()]
    unzipped = sum(path.stat().st_size for path in files)
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                archive.write(path, path.relative_to(out))
        zipped = handle.tell()
    return unzipped, zipped


def _recipe(flavour: str) -> Flavour:
    recipe = FLAVOURS.get(flavour)
    if recipe is None:
        raise BundlingError(
            f"unknown bundle flavour {flavour!r}: expected one of {', '.join(FLAVOURS)}"
        )
    return recipe


def build_dependencies(
    out: Path,
    *,
    target: BundleTarget,
    flavour: str = API.name,
    project_root: Path = PROJECT_ROOT,
    python: str | None = None,
) -> str | None:
    """The first half of `build_bundle`: fill the empty directory `out` with the flavour's
    locked dependencies, pruned, stripped and compiled. Returns the strip tool it used.

    A half of its own because it depends on the lock and this recipe only, never on the
    app: the benchmark's smoke run keeps it between runs and adds the app (`add_app`).
    `python`: the target's interpreter, if the caller has found it (`find_python`)."""
    recipe = _recipe(flavour)
    python = python or find_python(target.python_version)  # first: fail before any download
    uv = find_uv(project_root)
    strip_tool = find_strip_tool(target)
    install_dependencies(
        flavour=recipe, uv=uv, python=python, project_root=project_root, target=target, out=out
    )
    prune(flavour=recipe, out=out)
    strip_debug_info(tool=strip_tool, target=target, out=out)
    optimize = 2 if recipe.optimize_dependencies else 0
    compile_bytecode(python=python, target=target, out=out, optimize=optimize)
    return strip_tool


def add_app(
    out: Path,
    *,
    target: BundleTarget,
    flavour: str = API.name,
    project_root: Path = PROJECT_ROOT,
    python: str | None = None,
) -> None:
    """The second half of `build_bundle`: the flavour's parts of the app and its data
    folders, added to `out` (which holds `build_dependencies`' output) and compiled,
    always with their docstrings and asserts. Only the added folders are compiled: the
    rest was already."""
    recipe = _recipe(flavour)
    python = python or find_python(target.python_version)
    copy_sources(flavour=recipe, project_root=project_root, out=out)
    for name in (APP_PACKAGE, *recipe.data_dirs):
        folder_target = replace(target, runtime_root=f"{target.runtime_root}/{name}")
        compile_bytecode(python=python, target=folder_target, out=out / name)


def build_bundle(
    out: Path,
    *,
    target: BundleTarget,
    flavour: str = API.name,
    project_root: Path = PROJECT_ROOT,
) -> BundleReport:
    """Fill the empty directory `out` with a runnable `flavour` bundle for `target`.

    The default flavour is the API function's (the one whose size and cold start matter).
    """
    recipe = _recipe(flavour)
    python = find_python(target.python_version)  # first: fail before any download
    strip_tool = build_dependencies(
        out, target=target, flavour=recipe.name, project_root=project_root, python=python
    )
    add_app(out, target=target, flavour=recipe.name, project_root=project_root, python=python)
    unzipped, zipped = measure(out)
    return BundleReport(
        target=target,
        flavour=recipe.name,
        unzipped_bytes=unzipped,
        zipped_bytes=zipped,
        strip_tool=strip_tool,
    )
