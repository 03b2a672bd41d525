"""Bundle folders the measured processes run from: what Lambda runs, built for this machine.

Lambda's bundle is cp313 aarch64; the processes here run under CPython 3.13 (the same
minor version, `benchmarks.interpreter`) on this machine's architecture, from folders
built by the Lambda bundle's own recipe (`infra_cdk.bundling`) with this machine's
platform tag:

- `api/`, A's: `build_bundle` itself: the API bundle's locked dependencies as cp313
  wheels, pruned and stripped, the API flavour's parts of `lambda_app/`, and bytecode
  compiled by 3.13 as unchecked-hash `.pyc`. What `cdk deploy` ships, less the
  architecture;
- `peers/`, B's and C's: the same locked wheels as `pip install --target` leaves them
  (the recipe's install step only: no pruning, no stripping) and the two peers.

Each in two copies:

- `precompiled/`: with bytecode compiled the way the Lambda bundle compiles it;
- `no-bytecode/`: the same files without any `__pycache__`, run with
  PYTHONDONTWRITEBYTECODE=1, like an unprecompiled bundle in Lambda's read-only folder.

The smoke run (`--smoke`) builds the precompiled folders only, from dependencies kept in
the machine's cache while the lock and the recipe are unchanged (`smoke_bundles`);
`make bench` builds everything anew every time.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from infra_cdk.bundling import (
    API,
    GLIBC_TAG,
    LAMBDA_TARGET,
    PROJECT_ROOT,
    BundleTarget,
    add_app,
    build_bundle,
    build_dependencies,
    compile_bytecode,
    find_strip_tool,
    find_uv,
    install_dependencies,
    unzipped_size,
)

NO_BYTECODE = "no-bytecode"
PRECOMPILED = "precompiled"
API_FOLDER = "api"  # A
PEERS_FOLDER = "peers"  # B and C
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


def local_target(folder: Path) -> BundleTarget:
    """The Lambda target's Python version, on this machine's architecture."""
    return BundleTarget(
        python_version=LAMBDA_TARGET.python_version,
        platform=f"{platform.machine()}-{GLIBC_TAG}",
        runtime_root=str(folder),
    )


@dataclass(frozen=True)
class LocalBundles:
    folders: dict[str, dict[str, Path]]  # {API_FOLDER | PEERS_FOLDER: {variant: path}}
    api_target: str  # e.g. "cp313 x86_64-manylinux_2_28"
    api_path: Path  # A's folder as the recipe built it
    api_unzipped_bytes: int
    api_zipped_bytes: int | None  # None: not measured (the smoke run)


def _copy_without_bytecode(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=_IGNORED)
    return target


def build_peers(folder: Path, *, python: str, target: BundleTarget) -> Path:
    """B's and C's folder: the locked wheels as installed, and the peers. Sources only."""
    folder.mkdir(parents=True)
    install_dependencies(
        flavour=API,
        uv=find_uv(PROJECT_ROOT),
        python=python,
        project_root=PROJECT_ROOT,
        target=target,
        out=folder,
    )
    _add_peers(folder)
    return folder


def _add_peers(folder: Path) -> None:
    (folder / "benchmarks").mkdir()
    shutil.copytree(
        PROJECT_ROOT / "benchmarks" / "peers", folder / "benchmarks" / "peers", ignore=_IGNORED
    )
    shutil.copy2(PROJECT_ROOT / "benchmarks" / "__init__.py", folder / "benchmarks")


def build_local_bundles(root: Path, *, python: str) -> LocalBundles:
    """Every folder under `root`."""
    api_root = root / API_FOLDER
    api = api_root / PRECOMPILED
    api.mkdir(parents=True)
    target = local_target(api)
    api_report = build_bundle(api, target=target, flavour=API.name)
    peers = build_peers(root / PEERS_FOLDER / NO_BYTECODE, python=python, target=target)
    peers_compiled = root / PEERS_FOLDER / PRECOMPILED
    shutil.copytree(peers, peers_compiled)
    compile_bytecode(python=python, target=local_target(peers_compiled), out=peers_compiled)
    api_sources = _copy_without_bytecode(api, api_root / NO_BYTECODE)
    for folder in (api_sources, peers):
        if found := bytecode_files(folder):  # it would measure a precompiled start
            raise RuntimeError(f"{folder} holds {found} .pyc files; it must hold none")
    return LocalBundles(
        folders={
            API_FOLDER: {NO_BYTECODE: api_sources, PRECOMPILED: api},
            PEERS_FOLDER: {NO_BYTECODE: peers, PRECOMPILED: peers_compiled},
        },
        api_target=target.describe(),
        api_path=api,
        api_unzipped_bytes=api_report.unzipped_bytes,
        api_zipped_bytes=api_report.zipped_bytes,
    )


def bytecode_files(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.pyc"))


# --- the smoke run's folders: the dependencies kept between runs ---------------------------

# On the machine, not in the clone (like uv's own cache): what goes in depends on the lock
# and the recipe only, so every clone and every edit of the app reuses it.
SMOKE_CACHE_ENTRIES = 3  # a few locks side by side (branches), never a growing pile


def smoke_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lambda-app" / "bench-smoke"


def _dependencies_digest(python: str, python_version: str, target: BundleTarget) -> str:
    """What the cached folders are made of: the lock, the recipe (and this module, which
    applies it), the peers, the interpreter, the architecture and the strip tool found."""
    strip_tool = find_strip_tool(target) or ""
    machine = f"{python}\0{python_version}\0{platform.machine()}\0{strip_tool}"
    digest = hashlib.sha256(machine.encode())
    inputs = [
        PROJECT_ROOT / name for name in ("uv.lock", "pyproject.toml", "benchmarks/__init__.py")
    ]
    inputs += [PROJECT_ROOT / "infra_cdk" / "bundling.py", Path(__file__)]
    peers = (PROJECT_ROOT / "benchmarks" / "peers").rglob("*")
    inputs += sorted(p for p in peers if p.is_file() and "__pycache__" not in p.parts)
    for path in inputs:
        digest.update(str(path.relative_to(PROJECT_ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _build_dependencies(entry: Path, *, python: str) -> None:
    """A's dependencies by the recipe's first half and B's and C's folder, both compiled,
    built aside and moved into place whole: a run that stops half-way, or two runs at
    once, never leave an entry that looks complete and is not."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f"{entry.name}.", dir=entry.parent))
    try:
        # Bytecode names the entry's own files: a traceback from a copy shows real lines.
        api, peers = building / API_FOLDER, building / PEERS_FOLDER
        api.mkdir()
        build_dependencies(api, target=local_target(entry / API_FOLDER), python=python)
        peers_target = local_target(entry / PEERS_FOLDER)
        build_peers(peers, python=python, target=peers_target)
        compile_bytecode(python=python, target=peers_target, out=peers)
        try:
            building.rename(entry)
        except OSError:  # another run finished the same entry first: keep that one
            if not entry.is_dir():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    _forget_old_entries(entry.parent)


def _forget_old_entries(cache: Path) -> None:
    """Keep the most recently used entries, and builds still running (a day at most)."""
    entries, abandoned = [], []
    for path in cache.iterdir():
        if "." not in path.name:
            entries.append(path)
        elif path.stat().st_mtime < time.time() - 24 * 3600:
            abandoned.append(path)  # a build that was killed
    entries.sort(key=lambda path: path.stat().st_mtime)
    for old in entries[:-SMOKE_CACHE_ENTRIES] + abandoned:
        shutil.rmtree(old, ignore_errors=True)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:  # another file system (or no hard links): a copy
        shutil.copy2(source, destination)


def _link_tree(source: Path, destination: Path) -> None:
    """`source`'s files in `destination` as hard links: copying thousands of files would
    take seconds. Nothing writes to them (the processes run with PYTHONDONTWRITEBYTECODE,
    `add_app` only adds files), so the cache entry is never changed through a link."""
    shutil.copytree(source, destination, symlinks=True, copy_function=_link_or_copy)


def smoke_bundles(root: Path, *, python: str, python_version: str) -> LocalBundles:
    """`build_local_bundles`' precompiled folders, under `root`, with the dependencies
    from the machine's cache (built on first use): the smoke run checks that the benchmark
    runs, and installing and compiling the dependencies would be most of its time.

    A's folder is the recipe's two halves, `build_dependencies` (cached) and `add_app`;
    B's and C's is `build_peers`' folder, compiled, all cached. No zipped size."""
    entry = smoke_cache_root() / _dependencies_digest(python, python_version, local_target(root))
    if not entry.is_dir():
        _build_dependencies(entry, python=python)
    entry.touch()  # recently used: the last to be removed
    api = root / API_FOLDER / PRECOMPILED
    _link_tree(entry / API_FOLDER, api)
    target = local_target(api)
    add_app(api, target=target, flavour=API.name, python=python)
    peers = root / PEERS_FOLDER / PRECOMPILED
    _link_tree(entry / PEERS_FOLDER, peers)
    return LocalBundles(
        folders={API_FOLDER: {PRECOMPILED: api}, PEERS_FOLDER: {PRECOMPILED: peers}},
        api_target=target.describe(),
        api_path=api,
        api_unzipped_bytes=unzipped_size(api),
        api_zipped_bytes=None,
    )
