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

The smoke run (`--smoke`) reuses the folders of its last run while their inputs are
unchanged (`cached_local_bundles`); `make bench` builds them anew every time.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

from infra_cdk.bundling import (
    API,
    GLIBC_TAG,
    LAMBDA_TARGET,
    PROJECT_ROOT,
    BundleTarget,
    build_bundle,
    compile_bytecode,
    find_uv,
    install_dependencies,
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
    api_zipped_bytes: int


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
    (folder / "benchmarks").mkdir()
    shutil.copytree(
        PROJECT_ROOT / "benchmarks" / "peers", folder / "benchmarks" / "peers", ignore=_IGNORED
    )
    shutil.copy2(PROJECT_ROOT / "benchmarks" / "__init__.py", folder / "benchmarks")
    return folder


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


# --- the smoke run's folders, kept between runs ------------------------------------------

SMOKE_CACHE = PROJECT_ROOT / ".cache" / "bench-smoke"


def _inputs_digest(python: str, python_version: str) -> str:
    """What the folders are made of: the lock, the recipe, the shipped sources, the peers,
    the interpreter and the architecture. Any change makes (and builds) a new entry."""
    digest = hashlib.sha256(f"{python}\0{python_version}\0{platform.machine()}".encode())
    inputs = [PROJECT_ROOT / "uv.lock", PROJECT_ROOT / "pyproject.toml"]
    inputs.append(PROJECT_ROOT / "infra_cdk" / "bundling.py")
    for folder in (PROJECT_ROOT / "lambda_app", PROJECT_ROOT / "benchmarks" / "peers"):
        inputs += sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".pyc")
    for path in inputs:
        digest.update(str(path.relative_to(PROJECT_ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def cached_local_bundles(*, python: str, python_version: str) -> LocalBundles:
    """`build_local_bundles`, precompiled, built once per set of inputs and kept in
    .cache/bench-smoke: the smoke run checks that the benchmark runs, and building and
    compiling the folders (the recipe the full run rebuilds every time) is most of its time."""
    entry = SMOKE_CACHE / _inputs_digest(python, python_version)
    manifest = entry / "manifest.json"
    if not manifest.is_file():
        if SMOKE_CACHE.exists():
            shutil.rmtree(SMOKE_CACHE)  # older entries: nothing would use them again
        bundles = build_local_bundles(entry / "run", python=python)
        manifest.write_text(
            json.dumps(
                {
                    "folders": {
                        name: {variant: str(path) for variant, path in variants.items()}
                        for name, variants in bundles.folders.items()
                    },
                    "api_target": bundles.api_target,
                    "api_path": str(bundles.api_path),
                    "api_unzipped_bytes": bundles.api_unzipped_bytes,
                    "api_zipped_bytes": bundles.api_zipped_bytes,
                }
            )
        )
    saved = json.loads(manifest.read_text())
    return LocalBundles(
        folders={
            name: {variant: Path(path) for variant, path in variants.items()}
            for name, variants in saved["folders"].items()
        },
        api_target=saved["api_target"],
        api_path=Path(saved["api_path"]),
        api_unzipped_bytes=saved["api_unzipped_bytes"],
        api_zipped_bytes=saved["api_zipped_bytes"],
    )
