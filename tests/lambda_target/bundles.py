"""Both bundles, built exactly as `cdk deploy` builds them, with the modification times
and the read-only files they have in /var/task."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from infra_cdk.bundling import (
    API,
    LAMBDA_TARGET,
    MIGRATION,
    BundleReport,
    BundlingError,
    build_bundle,
)
from tests.lambda_target.arm64_runtime import (
    TargetRuntime,
    make_read_only,
    prepare_target_runtime,
    remove_tree,
)


@dataclass
class Bundle:
    path: Path
    report: BundleReport | None = None


@dataclass(frozen=True)
class Target:
    """The arm64 runtime and the bundles that run on it."""

    runtime: TargetRuntime
    bundles: dict[str, Bundle]
    workspace: Path

    def bundle(self, name: str) -> Path:
        return self.bundles[name].path

    def copy_of(self, name: str, new_name: str, *, leave_out: tuple[str, ...] = ()) -> Path:
        """A copy of bundle `name` less what matches `leave_out` (shutil.ignore_patterns'
        globs, at any depth), read-only as well."""
        copy = self.workspace / new_name
        ignore = shutil.ignore_patterns(*leave_out)
        shutil.copytree(self.bundle(name), copy, ignore=ignore, symlinks=True)
        make_read_only(copy)
        return copy


# cdk-assets zips every file of an asset with this modification time (its `epoch()`, so
# that the same files always make the same zip), and Lambda unpacks them with it. Any
# timestamp-checked .pyc is then stale, and would be compiled again at every cold start.
CDK_ASSET_MTIME = datetime(1980, 1, 1, tzinfo=UTC).timestamp()


def stamp_as_deployed(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.utime(path, (CDK_ASSET_MTIME, CDK_ASSET_MTIME))


@contextlib.contextmanager
def _uv_offline() -> Iterator[None]:
    """build_bundle's uv runs inherit this process's environment: offline, a warm uv
    cache serves every wheel and a second run downloads nothing."""
    saved = os.environ.get("UV_OFFLINE")
    os.environ["UV_OFFLINE"] = "1"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["UV_OFFLINE"]
        else:
            os.environ["UV_OFFLINE"] = saved


def _build(bundle: Bundle, flavour: str, *, offline: bool) -> bool:
    """False when, offline, uv's cache lacked a wheel."""
    remove_tree(bundle.path)
    bundle.path.mkdir()
    try:
        bundle.report = build_bundle(bundle.path, target=LAMBDA_TARGET, flavour=flavour)
    except BundlingError:
        if not offline:
            raise
        return False
    stamp_as_deployed(bundle.path)
    make_read_only(bundle.path)
    return True


def prepare_target(workspace: Path) -> Target:
    """The cached arm64 runtime and both bundles, prepared side by side (each step mostly
    waits on downloads and subprocesses)."""
    bundles = {name: Bundle(workspace / name) for name in (API.name, MIGRATION.name)}
    with ThreadPoolExecutor(max_workers=3) as pool:
        with _uv_offline():
            runtime = pool.submit(prepare_target_runtime)
            offline = {
                name: pool.submit(_build, bundle, name, offline=True)
                for name, bundle in bundles.items()
            }
            missed = [name for name, built in offline.items() if not built.result()]
        # What uv's cache lacked: the same recipe again, with the index.
        for built in [pool.submit(_build, bundles[name], name, offline=False) for name in missed]:
            built.result()
        return Target(runtime=runtime.result(), bundles=bundles, workspace=workspace)
