"""What Lambda's python3.13 runtime puts around a bundle, for arm64, cached between runs.

- `/usr` with an arm64 CPython 3.13 and the shared libraries it and the bundles'
  extensions link against: Debian trixie's `.deb`s, fetched with a private apt
  configuration (this machine's apt sources, architectures and dpkg database are never
  touched) and unpacked with `dpkg -x`;
- `/var/runtime`: `awslambdaric` (the runtime client Lambda's python3.13 image starts),
  boto3 (the runtime provides it, the bundles leave it out) and their dependencies, from
  their aarch64 cp313 wheels.

Both are cached between runs: a second run downloads nothing. The runtime folder is
keyed by its pinned wheels. The interpreter is Debian trixie's current python3.13: the
minor version is what Lambda's runtime fixes (its patch level moves on its own too),
and a Debian mirror keeps only a suite's current build, so an exact pin would break
every fresh machine at trixie's next update. The build used is in the cache's manifest.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from infra_cdk.bundling import PROJECT_ROOT, find_python, find_uv

# Debian trixie's CPython 3.13: the minor version Lambda's python3.13 runtime runs.
DEBIAN_SUITE = "trixie"
# Besides python3.13 and what it depends on: the C++ runtime that awslambdaric's
# extension links against (Lambda's image has it, python3.13 does not need it).
EXTRA_DEBS = ("libstdc++6",)

# The runtime folder, each package pinned (installed with --no-deps: exactly these).
RUNTIME_PINS = (
    "awslambdaric==4.2.2",
    "boto3==1.44.8",
    "botocore==1.44.8",
    "jmespath==1.1.0",
    "python-dateutil==2.9.0.post0",
    "s3transfer==0.19.3",
    "simplejson==4.3.0",
    "six==1.17.0",
    "snapshot-restore-py==1.0.0",  # the runtime's SnapStart hooks module
    "urllib3==2.8.0",
)
RUNTIME_PLATFORM = "aarch64-manylinux_2_28"
PYTHON_VERSION = "3.13"

CACHE_DIR = Path(os.environ.get("LAMBDA_TARGET_CACHE", PROJECT_ROOT / ".cache" / "lambda-target"))
QEMU = "qemu-aarch64-static"
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class TargetSetupError(RuntimeError):
    pass


@dataclass(frozen=True)
class TargetRuntime:
    root: Path  # the arm64 filesystem for `qemu -L`: usr/, etc/, lib -> usr/lib
    runtime: Path  # what /var/runtime holds

    @property
    def python(self) -> Path:
        return self.root / "usr" / "bin" / f"python{PYTHON_VERSION}"

    @property
    def stdlib(self) -> Path:
        return self.root / "usr" / "lib" / f"python{PYTHON_VERSION}"


# --- tools ---------------------------------------------------------------------------


def missing_tools() -> list[str]:
    """What this machine lacks for the harness, each with the command that installs it."""
    missing = []
    if shutil.which(QEMU) is None:
        missing.append(f"{QEMU}: apt-get install -y qemu-user-static")
    for tool, package in (("apt-get", "apt"), ("dpkg", "dpkg"), ("dpkg-deb", "dpkg")):
        if shutil.which(tool) is None:
            missing.append(f"{tool}: a Debian-based machine (package {package})")
    try:
        find_uv()
    except RuntimeError as exc:
        missing.append(str(exc))
    try:
        find_python(PYTHON_VERSION)  # compiles the bundles' bytecode
    except RuntimeError as exc:
        missing.append(str(exc))
    return missing


def _run(command: list[str], *, env: dict[str, str] | None = None, what: str) -> str:
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        raise TargetSetupError(
            f"{what} failed ({result.returncode}): {' '.join(command)}\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result.stdout


# --- the host's Debian mirror --------------------------------------------------------


@dataclass(frozen=True)
class AptSource:
    uri: str
    signed_by: str


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:  # a continuation line (e.g. an inline key)
                fields[key] += "\n" + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if fields:
            yield fields


_ONE_LINE_SOURCE = re.compile(r"^deb\s+(?:\[(?P<opts>[^\]]*)\]\s+)?(?P<uri>\S+)\s+(?P<rest>.+)$")


def _host_sources() -> Iterator[tuple[str, list[str], list[str], str | None]]:
    """(uri, suites, components, signed-by) of each `deb` source this machine's apt uses."""
    etc = Path("/etc/apt")
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        for fields in _deb822_stanzas(path.read_text()):
            if "deb" not in fields.get("types", "").split():
                continue
            if fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                yield (
                    uri,
                    fields.get("suites", "").split(),
                    fields.get("components", "").split(),
                    fields.get("signed-by"),
                )
    one_line = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            match = _ONE_LINE_SOURCE.match(line)
            if not match:
                continue
            options = dict(
                option.split("=", 1) for option in (match["opts"] or "").split() if "=" in option
            )
            suite, *components = match["rest"].split()
            yield match["uri"], [suite], components, options.get("signed-by")


def host_debian_mirror() -> AptSource:
    """The Debian archive this machine's apt already uses (never a name written here)."""
    for uri, suites, components, signed_by in _host_sources():
        # The main archive, not the security one: its release suite has no dash.
        if "main" in components and any("-" not in suite for suite in suites):
            keyring = signed_by if signed_by and "\n" not in signed_by else DEFAULT_KEYRING
            return AptSource(uri=uri.rstrip("/"), signed_by=keyring)
    raise TargetSetupError(
        "no Debian archive found in this machine's apt sources (/etc/apt/sources.list.d/"
        "*.sources or /etc/apt/sources.list): the harness fetches Debian trixie's arm64 "
        "python3.13 from the mirror this machine uses"
    )


# --- the cache -------------------------------------------------------------------------


@contextlib.contextmanager
def _cache_lock() -> Iterator[None]:
    """One builder at a time (two test sessions may start together)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_read_only(path: Path) -> None:
    """chmod -R a-w: what Lambda's /var/task and /var/runtime are."""
    for entry in [path, *path.rglob("*")]:
        if not entry.is_symlink():
            mode = entry.stat().st_mode
            entry.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def remove_tree(path: Path) -> None:
    """rmtree that also works on read-only trees (without root, a-w folders refuse unlinks)."""
    if not path.exists() and not path.is_symlink():
        return
    for entry in [path, *path.rglob("*")]:
        if entry.is_dir() and not entry.is_symlink():
            entry.chmod(entry.stat().st_mode | stat.S_IWUSR)
    shutil.rmtree(path)


def _python_key() -> str:
    return f"python{PYTHON_VERSION}_{DEBIAN_SUITE}_arm64"


def _runtime_key() -> str:
    digest = hashlib.sha256("\n".join(sorted(RUNTIME_PINS)).encode()).hexdigest()[:12]
    return f"runtime_{RUNTIME_PLATFORM}_cp{PYTHON_VERSION.replace('.', '')}_{digest}"


def prepare_target_runtime() -> TargetRuntime:
    """The cached arm64 root and runtime folder, built first if missing."""
    planned = TargetRuntime(
        root=CACHE_DIR / _python_key() / "root", runtime=CACHE_DIR / _runtime_key() / "runtime"
    )
    with _cache_lock():
        for partial in CACHE_DIR.glob(".partial-*"):
            remove_tree(partial)  # an interrupted build (we hold the lock: nobody else's)
        if not (planned.root.parent / "manifest.json").is_file():
            _build_python_root(planned.root.parent)
            _remove_others(planned.root.parent, "python*")
        if not (planned.runtime.parent / "manifest.json").is_file():
            _build_runtime_folder(planned.runtime.parent)
            _remove_others(planned.runtime.parent, "runtime_*")
    return planned


def _remove_others(kept: Path, pattern: str) -> None:
    """Entries for versions no longer pinned: nothing would use them again."""
    for entry in CACHE_DIR.glob(pattern):
        if entry != kept:
            remove_tree(entry)


def _staging(final: Path) -> Path:
    staging = CACHE_DIR / f".partial-{final.name}-{os.getpid()}"
    remove_tree(staging)
    remove_tree(final)
    staging.mkdir(parents=True)
    return staging


# --- /usr: Debian's arm64 python3.13 ----------------------------------------------------


def _apt_config(work: Path, source: AptSource) -> dict[str, str]:
    """A private apt: its own sources, state, cache and dpkg status; arm64 only."""
    etc, state, cache, log = (work / name for name in ("etc", "state", "cache", "log"))
    for folder in (
        etc / "apt.conf.d",
        etc / "preferences.d",
        etc / "sources.list.d",
        etc / "trusted.gpg.d",
        state / "lists" / "partial",
        cache / "archives" / "partial",
        log,
    ):
        folder.mkdir(parents=True, exist_ok=True)
    (state / "status").touch()  # nothing installed: apt resolves every dependency
    (etc / "sources.list").write_text(
        f"deb [arch=arm64 signed-by={source.signed_by}] {source.uri} {DEBIAN_SUITE} main\n"
    )
    settings = {
        "Dir::Etc": etc,
        "Dir::Etc::Parts": etc / "apt.conf.d",
        "Dir::Etc::SourceList": etc / "sources.list",
        "Dir::Etc::SourceParts": etc / "sources.list.d",
        "Dir::Etc::Trusted": etc / "trusted.gpg",
        "Dir::Etc::TrustedParts": etc / "trusted.gpg.d",
        "Dir::State": state,
        "Dir::State::status": state / "status",
        "Dir::Cache": cache,
        "Dir::Log": log,
        "APT::Architecture": "arm64",
        "Acquire::Languages": "none",
        "APT::Install-Recommends": "false",
        "Debug::NoLocking": "true",
    }
    lines = [f'{key} "{value}";' for key, value in settings.items()]
    lines.append('APT::Architectures { "arm64"; };')
    config = work / "apt.conf"
    config.write_text("\n".join(lines) + "\n")
    # APT_CONFIG is read first and moves Dir::Etc: the host's apt.conf.d (with its
    # post-download clean-up hooks) is never read.
    return {**os.environ, "APT_CONFIG": str(config), "LC_ALL": "C"}


def _download_debs(work: Path) -> list[Path]:
    source = host_debian_mirror()
    env = _apt_config(work, source)
    _run(
        ["apt-get", "-q", "update"],
        env=env,
        what=f"apt-get update (Debian {DEBIAN_SUITE} arm64; its signing keys come with an "
        f"up-to-date debian-archive-keyring: apt-get install debian-archive-keyring)",
    )
    _run(
        [
            "apt-get",
            "-q",
            "-y",
            "install",
            "--download-only",
            f"python{PYTHON_VERSION}",
            *EXTRA_DEBS,
        ],
        env=env,
        what="downloading the arm64 .debs",
    )
    return sorted((work / "cache" / "archives").glob("*.deb"))


def _build_python_root(final: Path) -> None:
    staging = _staging(final)
    root = staging / "root"
    debs = _download_debs(staging / "apt")
    packages = {}
    for deb in debs:
        _run(["dpkg", "-x", str(deb), str(root)], what=f"unpacking {deb.name}")
        fields = _run(["dpkg-deb", "-f", str(deb), "Package", "Version"], what="dpkg-deb -f")
        name, version = (line.split(":", 1)[1].strip() for line in fields.splitlines()[:2])
        packages[name] = version
    # Merged /usr, as Debian's base-files lays it out: the loader is /lib/ld-linux-*.
    for name in ("lib", "bin"):
        if not (root / name).exists():
            (root / name).symlink_to(f"usr/{name}")
    # The host's ld.so.cache lists x86-64 libraries; an empty one makes the arm64 loader
    # search its default folders (in this root) only.
    (root / "etc" / "ld.so.cache").write_bytes(b"")
    # Debian compiles the standard library at install time (py3compile), and Lambda's
    # runtime ships it compiled: without this every import of it would compile anew.
    _compile(root / "usr" / "lib" / f"python{PYTHON_VERSION}", staging=staging, final=final)
    make_read_only(root)
    python = packages[f"python{PYTHON_VERSION}"]
    if not python.startswith(f"{PYTHON_VERSION}."):
        raise TargetSetupError(f"Debian {DEBIAN_SUITE}'s python{PYTHON_VERSION} is {python}")
    manifest = {"suite": DEBIAN_SUITE, "python": python, "packages": packages}
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    shutil.rmtree(staging / "apt")
    staging.rename(final)


def _compile(folder: Path, *, staging: Path, final: Path) -> None:
    # The code objects name the files where the function will load them from, once the
    # staging folder is renamed into place (the guest's Python runs from the cache: qemu's
    # -L root serves the loader and shared libraries).
    python = find_python(PYTHON_VERSION)
    command = [python, "-m", "compileall", "-q", "-j", "0", "-s", str(staging), "-p", str(final)]
    _run([*command, str(folder)], what=f"compiling {folder}")


# --- /var/runtime: awslambdaric, boto3 ---------------------------------------------------


def _build_runtime_folder(final: Path) -> None:
    staging = _staging(final)
    runtime = staging / "runtime"
    # A cache miss needs the index, even while the bundles' builds try offline first.
    env = {key: value for key, value in os.environ.items() if key != "UV_OFFLINE"}
    _run(
        [
            find_uv(),
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--link-mode",
            "copy",
            "--python",
            find_python(PYTHON_VERSION),
            "--target",
            str(runtime),
            "--python-platform",
            RUNTIME_PLATFORM,
            "--python-version",
            PYTHON_VERSION,
            "--only-binary",
            ":all:",
            *RUNTIME_PINS,
        ],
        env=env,
        what="installing the runtime folder's wheels",
    )
    shutil.rmtree(runtime / "bin", ignore_errors=True)  # console scripts for this machine
    _compile(runtime, staging=staging, final=final)
    make_read_only(runtime)
    (staging / "manifest.json").write_text(json.dumps({"pins": list(RUNTIME_PINS)}, indent=2))
    staging.rename(final)
