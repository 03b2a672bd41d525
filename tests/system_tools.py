"""The system tools the tests run, each written once: how to find it, where it comes from.

`make test` runs `python3 -m tests.system_tools --install` before pytest, so a missing tool
stops the run before any test instead of failing one halfway. As root on a machine with
apt-get, `--install` installs what is missing and the distribution's apt has (one
`apt-get update`, one `apt-get install`, then one per package if that one failed, so one
package apt can't install sinks none of the others); otherwise, and always without
`--install` or for what apt lacks, it exits 1 with the commands to run, for the
distribution /etc/os-release names. With every tool present it prints nothing and never
calls apt.

    python3 -m tests.system_tools            report what is missing (exit 1), install nothing
    python3 -m tests.system_tools --install  install what apt can, as root; report the rest
    python3 -m tests.system_tools node       only the named tools (`make synth` needs node)
    python3 -m tests.system_tools --os-release FILE   as on the distribution FILE describes

Standard library only (and infra_cdk.bundling's lookups, which are too): it runs with the
machine's python3 before .venv exists, since creating .venv needs python3-venv.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra_cdk.bundling import LAMBDA_TARGET, BundlingError, find_python, find_strip_tool

# aws-cdk-lib's own minimum (its package.json: "engines": {"node": ">= 20.0.0"};
# tests/test_system_tools.py keeps the two equal). Debian 12's apt has Node 18.
NODE_MAJOR = 20


@dataclass(frozen=True)
class Distro:
    """What /etc/os-release says: which apt this is, and so what it has."""

    id: str = ""  # "debian", "ubuntu"; "" when unknown
    like: tuple[str, ...] = ()  # ID_LIKE: the distributions it derives from
    version: int | None = None  # VERSION_ID's major number (none on Debian testing)

    @classmethod
    def parse(cls, os_release: str) -> Distro:
        fields = {}
        for line in os_release.splitlines():
            name, _, value = line.partition("=")
            fields[name.strip()] = value.strip().strip("\"'")
        version = re.match(r"\d+", fields.get("VERSION_ID", ""))
        return cls(
            id=fields.get("ID", ""),
            like=tuple(fields.get("ID_LIKE", "").split()),
            version=int(version[0]) if version else None,
        )

    @classmethod
    def of_this_machine(cls, path: Path = Path("/etc/os-release")) -> Distro:
        try:
            return cls.parse(path.read_text())
        except OSError:
            return cls()

    def is_(self, name: str) -> bool:
        return name in (self.id, *self.like)

    def at_least(self, name: str, version: int) -> bool:
        return self.id == name and self.version is not None and self.version >= version


@dataclass(frozen=True)
class Lookup:
    path: str | None
    note: str = ""  # why what was found does not count (an old version)


@dataclass(frozen=True)
class Tool:
    name: str  # the command the tests run
    used_for: str
    find: Callable[[], Lookup]
    package: str | None  # the Debian package; None: apt has no usable one, see `instead`
    # How to get it where apt cannot: the commands for this distribution ("sudo " or "").
    instead: Callable[[Distro, str], str] = lambda distro, sudo: ""
    apt_lacks_it_on: tuple[str, ...] = ()  # distributions whose apt has no usable `package`

    def package_on(self, distro: Distro) -> str | None:
        return None if any(map(distro.is_, self.apt_lacks_it_on)) else self.package


def _on_path(command: str) -> Callable[[], Lookup]:
    return lambda: Lookup(shutil.which(command))


def _on_path_or_sbin(command: str) -> Callable[[], Lookup]:
    """Debian puts daemons in /usr/sbin, which is on root's PATH but often not a user's:
    look in the sbin beside each bin on PATH too."""

    def lookup() -> Lookup:
        dirs = os.environ.get("PATH", "").split(os.pathsep)
        siblings = [str(Path(d).with_name("sbin")) for d in dirs if Path(d).name == "bin"]
        return Lookup(shutil.which(command, path=os.pathsep.join(dirs + siblings)))

    return lookup


def _chromium() -> Lookup:
    # Debian's package, Google's .deb, Ubuntu's snap (in /snap/bin, off a container's PATH).
    for command in ("chromium", "google-chrome", "google-chrome-stable", "chromium-browser"):
        if found := shutil.which(command):
            return Lookup(found)
    snap = Path("/snap/bin/chromium")
    return Lookup(str(snap) if os.access(snap, os.X_OK) else None)


def _venv() -> Lookup:
    # Debian ships `venv` in python3 but ensurepip, without which `python3 -m venv`
    # fails, only in python3.X-venv.
    found = importlib.util.find_spec("ensurepip") is not None
    return Lookup(sys.executable if found else None)


def _node() -> Lookup:
    node = shutil.which("node")
    if node is None:
        return Lookup(None)
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()
    match = re.fullmatch(r"v(\d+)\..*", version)
    if match and int(match[1]) >= NODE_MAJOR:
        return Lookup(node)
    return Lookup(None, note=f"found {version or 'a node that prints no version'} at {node}")


def _python313() -> Lookup:
    try:
        return Lookup(find_python(LAMBDA_TARGET.python_version))
    except BundlingError:
        return Lookup(None)


def _apt(sudo: str, *packages: str) -> str:
    return f"{sudo}apt-get update && {sudo}apt-get install -y {' '.join(packages)}"


CHROME_DEB = "google-chrome-stable_current_amd64.deb"


def _chromium_instead(distro: Distro, sudo: str) -> str:
    return (
        "Ubuntu's apt has only a transitional package for the snap: "
        f"`{sudo}snap install chromium`, or where snaps don't run (a container) Google Chrome "
        f"(amd64): `{_apt(sudo, 'curl', 'ca-certificates')} && "
        f"curl -fsSLO https://dl.google.com/linux/direct/{CHROME_DEB} && "
        f"{sudo}apt-get install -y ./{CHROME_DEB}`"
    )


def _node_instead(distro: Distro, sudo: str) -> str:
    if distro.at_least("debian", 13):
        return (
            f"Debian {distro.version}'s own Node.js is new enough: `{_apt(sudo, 'nodejs', 'npm')}`"
        )
    if not distro.is_("debian"):
        return f"Node.js {NODE_MAJOR} or newer, e.g. from https://nodejs.org/en/download"
    # Debian 12's nodejs is 18, Ubuntu 24.04's 18, 22.04's 12: too old.
    nodesource = f"https://deb.nodesource.com/setup_{NODE_MAJOR}.x"
    return (
        f"Node.js {NODE_MAJOR} or newer (this distribution's nodejs is older), "
        f"from NodeSource's apt repository: `{_apt(sudo, 'curl', 'ca-certificates')} && "
        f"curl -fsSL {nodesource} | {sudo}bash - && {sudo}apt-get install -y nodejs`"
    )


def _python313_instead(distro: Distro, sudo: str) -> str:
    version = LAMBDA_TARGET.python_version
    if distro.at_least("debian", 13):
        return f"`{_apt(sudo, f'python{version}')}`"
    return (
        f"`make install && .tools/bin/uv python install {version}` (uv's own CPython, found "
        f"where uv keeps it), or python{version} on PATH, or a pyenv {version}, or "
        f"LAMBDA_BUNDLE_PYTHON=/path/to/python{version}"
    )


THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
TOOLS = (
    Tool(
        name=f"python{THIS_PYTHON} -m venv",
        used_for="makes .tools/ and .venv/",
        find=_venv,
        package=f"python{THIS_PYTHON}-venv",
    ),
    Tool(
        name="pgbouncer",
        used_for="the RDS Proxy stand-in (tests/reliability)",
        find=_on_path_or_sbin("pgbouncer"),
        package="pgbouncer",
    ),
    Tool(
        name="chromium",
        used_for="renders the API docs page (tests/docs)",
        find=_chromium,
        package="chromium",
        instead=_chromium_instead,
        apt_lacks_it_on=("ubuntu",),
    ),
    Tool(
        name="llvm-strip",
        used_for="strips the aarch64 Lambda bundle's extensions",
        find=lambda: Lookup(find_strip_tool(LAMBDA_TARGET)),
        package="llvm",
    ),
    Tool(
        name="qemu-aarch64-static",
        used_for="runs the aarch64 Lambda bundle on this machine",
        find=_on_path("qemu-aarch64-static"),
        package="qemu-user-static",
    ),
    Tool(
        name="dpkg-deb",
        used_for="the aarch64 bundle's qemu harness",
        find=_on_path("dpkg-deb"),
        package="dpkg",
    ),
    Tool(
        name="apt-get",
        used_for="the aarch64 bundle's qemu harness",
        find=_on_path("apt-get"),
        package="apt",
    ),
    Tool(
        name="node",
        used_for="the AWS CDK's jsii runtime (tests/infra) and CLI",
        find=_node,
        package=None,
        instead=_node_instead,
    ),
    Tool(
        name=f"python{LAMBDA_TARGET.python_version}",
        used_for="compiles the aarch64 Lambda bundle's bytecode (the runtime's version)",
        find=_python313,
        package=None,
        instead=_python313_instead,
    ),
)


BY_NAME = {tool.name: tool for tool in TOOLS}


def find(name: str) -> str | None:
    """The path of one of TOOLS, by name, or None (for the tests that run it)."""
    return BY_NAME[name].find().path


def missing_message(name: str) -> str:
    """What a test says when run without `make test` and `name` is missing."""
    return (
        f"{name} is not installed: `make test` installs it (as root, with apt) or prints the "
        "command to run; `python3 -m tests.system_tools` lists every missing tool"
    )


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    # Other apt runs on the machine hold the lock for a while: wait for it, don't fail.
    return subprocess.run(
        ["apt-get", "-o", "DPkg::Lock::Timeout=600", *args],
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )


def _install(packages: Sequence[str]) -> None:
    """apt-get install `packages`, and where that fails each alone: one package this apt
    can't install must not keep the others out. What still fails, the check reports."""
    print(f"system tools: installing {' '.join(packages)} with apt-get", file=sys.stderr)
    steps = [("update", "-qq"), ("install", "-y", "-qq", "--no-install-recommends", *packages)]
    for step in steps:
        result = _apt_get(*step)
        if result.returncode != 0:
            output = (result.stdout + result.stderr)[-4000:]
            print(f"apt-get {' '.join(step)} failed:\n{output}", file=sys.stderr)
            if step[0] == "update":
                return
    if result.returncode != 0 and len(packages) > 1:
        for package in packages:
            _apt_get("install", "-y", "-qq", "--no-install-recommends", package)


def packages(missing: Sequence[tuple[Tool, Lookup]], distro: Distro) -> list[str]:
    """The packages this distribution's apt installs the missing tools from."""
    return [package for tool, _ in missing if (package := tool.package_on(distro))]


def report(
    missing: Sequence[tuple[Tool, Lookup]], *, distro: Distro, has_apt: bool, is_root: bool
) -> str:
    width = max(len(tool.name) for tool, _ in missing)
    lines = ["Missing system tools:"]
    for tool, lookup in missing:
        note = f"; {lookup.note}" if lookup.note else ""
        lines.append(f"  {tool.name:<{width}}  {tool.used_for}{note}")
    lines.append("To install them:")
    sudo = "" if is_root else "sudo "
    apt_packages = packages(missing, distro)
    if apt_packages and has_apt:
        lines.append(f"  {_apt(sudo, '--no-install-recommends', *apt_packages)}")
    elif apt_packages:
        lines.append(
            "  this machine has no apt-get: install the equivalents of these Debian packages "
            f"with its package manager: {' '.join(apt_packages)}"
        )
    lines += [
        f"  {tool.name}: {tool.instead(distro, sudo)}"
        for tool, _ in missing
        if not tool.package_on(distro)
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m tests.system_tools",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--install", action="store_true", help="as root with apt-get: install what is missing"
    )
    parser.add_argument(
        "--os-release",
        type=Path,
        default=Path("/etc/os-release"),
        help="the file naming the distribution, whose apt and instructions apply",
    )
    parser.add_argument("names", nargs="*", help="check only these tools (default: all)")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(BY_NAME)
    if unknown:
        parser.error(f"unknown tools: {', '.join(sorted(unknown))}")
    tools = [tool for tool in TOOLS if not args.names or tool.name in args.names]

    missing = [(tool, lookup) for tool in tools if (lookup := tool.find()).path is None]
    has_apt, is_root = shutil.which("apt-get") is not None, os.geteuid() == 0
    distro = Distro.of_this_machine(args.os_release)
    apt_packages = packages(missing, distro)
    if apt_packages and args.install and has_apt and is_root:
        _install(apt_packages)
        missing = [(tool, lookup) for tool, _ in missing if (lookup := tool.find()).path is None]
    if missing:
        print(report(missing, distro=distro, has_apt=has_apt, is_root=is_root), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
