"""Bundle folders the measured processes run from, built for this machine.

The Lambda bundle targets manylinux2014 aarch64 / CPython 3.13 and cannot run
here, so the processes run from equivalent folders for the local interpreter,
one per way of shipping code:

- `api/`, A's: the API bundle's dependencies (the closure of `[project].dependencies`
  and the API flavour's dependency groups, copied from the virtualenv without any
  bytecode) and the API flavour's parts of `lambda_app/`, chosen and pruned by the API
  bundle's own rules (`infra_cdk.bundling.copy_sources`, `prune`): what A runs on Lambda;
- `peers/`, B's and C's: the same dependency closure, unpruned, and the two peers:
  what `pip install --target` ships for a typical function.

Each in two copies:

- `no-bytecode/`: sources only, run with PYTHONDONTWRITEBYTECODE=1, like an
  unprecompiled bundle in Lambda's read-only code folder;
- `precompiled/`: the same files plus bytecode compiled the way a Lambda bundle
  precompiles it (unchecked-hash pycs: zip extraction does not keep mtimes).
"""

from __future__ import annotations

import compileall
import py_compile
import re
import shutil
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NO_BYTECODE = "no-bytecode"
PRECOMPILED = "precompiled"
API_FOLDER = "api"  # A
PEERS_FOLDER = "peers"  # B and C
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_requirements() -> list[Requirement]:
    """What the API bundle installs: the project's dependencies and the flavour's groups."""
    from infra_cdk.bundling import API

    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    groups = pyproject.get("dependency-groups", {})
    specs = [
        *pyproject["project"]["dependencies"],
        *(spec for group in API.dependency_groups for spec in groups[group]),
    ]
    return [Requirement(spec) for spec in specs]


def runtime_distributions() -> list[metadata.Distribution]:
    """Every installed distribution the runtime dependencies need, extras included."""
    found: dict[str, metadata.Distribution] = {}
    pending: list[tuple[Requirement, frozenset[str]]] = [
        (req, frozenset()) for req in runtime_requirements()
    ]
    while pending:
        req, parent_extras = pending.pop()
        environments = [{"extra": extra} for extra in parent_extras] or [{"extra": ""}]
        if req.marker is not None and not any(req.marker.evaluate(e) for e in environments):
            continue
        name = _canonical(req.name)
        seen = name in found
        dist = found.get(name) or metadata.distribution(req.name)
        found[name] = dist
        extras = frozenset(req.extras)
        if seen and not extras:
            continue
        for spec in dist.requires or []:
            pending.append((Requirement(spec), extras))
    return sorted(found.values(), key=lambda d: _canonical(d.metadata["Name"]))


def _copy_distribution(dist: metadata.Distribution, target: Path) -> None:
    for file in dist.files or []:
        relative = Path(str(file))
        if relative.parts[0] == ".." or "__pycache__" in relative.parts:
            continue  # console scripts, bytecode
        if relative.suffix in (".pyc", ".pyo"):
            continue
        source = Path(str(dist.locate_file(file)))
        if source.is_file():
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def _copy_dependencies(target: Path) -> None:
    target.mkdir(parents=True)
    for dist in runtime_distributions():
        _copy_distribution(dist, target)


def build_api_sources(target: Path) -> Path:
    """A's folder: the dependencies and the app, chosen and pruned like the API bundle.
    Sources only."""
    # The CDK app's own rules, not a copy of them.
    from infra_cdk.bundling import API, copy_sources, prune

    _copy_dependencies(target)
    copy_sources(flavour=API, project_root=PROJECT_ROOT, out=target)
    prune(flavour=API, out=target)
    return target


def build_peer_sources(target: Path) -> Path:
    """B's and C's folder: the dependencies as installed, and the peers. Sources only."""
    _copy_dependencies(target)
    (target / "benchmarks").mkdir()
    shutil.copytree(
        PROJECT_ROOT / "benchmarks" / "peers", target / "benchmarks" / "peers", ignore=_IGNORED
    )
    shutil.copy2(PROJECT_ROOT / "benchmarks" / "__init__.py", target / "benchmarks")
    return target


def precompile(folder: Path) -> None:
    ok = compileall.compile_dir(
        str(folder),
        quiet=2,
        workers=0,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    if not ok:
        raise RuntimeError(f"byte-compiling {folder} failed")


def _with_precompiled_copy(source: Path) -> dict[str, Path]:
    compiled = source.parent / PRECOMPILED
    shutil.copytree(source, compiled)
    precompile(compiled)
    return {NO_BYTECODE: source, PRECOMPILED: compiled}


def build_local_bundles(root: Path) -> dict[str, dict[str, Path]]:
    """Every folder under `root`: {API_FOLDER | PEERS_FOLDER: {NO_BYTECODE | PRECOMPILED: path}}."""
    return {
        API_FOLDER: _with_precompiled_copy(build_api_sources(root / API_FOLDER / NO_BYTECODE)),
        PEERS_FOLDER: _with_precompiled_copy(build_peer_sources(root / PEERS_FOLDER / NO_BYTECODE)),
    }


def bytecode_files(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.pyc"))
