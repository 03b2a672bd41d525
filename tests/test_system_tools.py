"""The system tools check that `make test` runs first, run for real on a PATH we build.

Each test runs `python3 -m tests.system_tools` as `make test` does, with the machine's own
interpreter, in an environment holding only the tools the test put there. `apt-get` (and
`dpkg-deb`) there is a recorder that installs nothing, so no test changes the machine.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pytest

from tests import system_tools

ROOT = Path(__file__).resolve().parent.parent
# What `make` itself runs it with: the machine's Python, not .venv's.
# With PYTHON= (Ubuntu 22.04's python3 is 3.10) that is the interpreter .venv was made with.
MACHINE_PYTHON = Path(sys.base_prefix, "bin", f"python{sys.version_info[0]}.{sys.version_info[1]}")
# Besides python3: what the README asks for, and a shell with a few of coreutils.
ESSENTIALS = ("make", "git", "node", "sh", "bash", "env", "cat", "ls")
SUDO = "" if os.geteuid() == 0 else "sudo "
DEBIAN_12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\nID=debian\n'
DEBIAN_13 = 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nVERSION_ID="13"\nID=debian\n'
UBUNTU_24_04 = (
    'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\n'
    "ID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n"
)
NODESOURCE = (
    "apt-get update && {sudo}apt-get install -y curl ca-certificates && "
    "curl -fsSL https://deb.nodesource.com/setup_20.x | {sudo}bash - && "
    "{sudo}apt-get install -y nodejs"
)


@dataclass
class Machine:
    """A bin folder for PATH, and what its `apt-get` was asked to do."""

    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def apt_calls(self) -> Path:
        return self.root / "apt-calls"

    def link(self, name: str, target: str | Path) -> None:
        (self.bin / name).symlink_to(target)

    def fake(self, name: str, script: str) -> None:
        path = self.bin / name
        path.write_text(f"#!/bin/sh\n{script}\n")
        path.chmod(0o755)

    def calls(self) -> list[str]:
        return self.apt_calls.read_text().splitlines() if self.apt_calls.exists() else []

    def check(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """The check, on a Debian 12 (this machine's own distribution may be another)."""
        os_release = self.root / "os-release"
        os_release.write_text(DEBIAN_12)
        return subprocess.run(
            [
                str(MACHINE_PYTHON),
                "-m",
                "tests.system_tools",
                "--os-release",
                str(os_release),
                *args,
            ],
            cwd=ROOT,
            # Nothing of this machine's: no pyenv versions, no LAMBDA_BUNDLE_PYTHON.
            env={
                "PATH": str(self.bin),
                "HOME": str(self.root),
                "PYENV_ROOT": str(self.root / "pyenv"),
                "LANG": "C.UTF-8",
                **env,
            },
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture
def fresh_machine(tmp_path: Path) -> Machine:
    """python3, make, git, node and a shell, as on a fresh Debian machine, and apt."""
    machine = Machine(tmp_path)
    machine.bin.mkdir()
    machine.link("python3", MACHINE_PYTHON)
    for name in ESSENTIALS:
        if found := shutil.which(name):
            machine.link(name, found)
    machine.fake("apt-get", f'echo "DEBIAN_FRONTEND=$DEBIAN_FRONTEND $*" >> {machine.apt_calls}')
    machine.fake("dpkg-deb", f'echo "dpkg-deb $*" >> {machine.apt_calls}; exit 1')
    return machine


@pytest.fixture
def provisioned_machine(fresh_machine: Machine) -> tuple[Machine, dict[str, str]]:
    """The fresh machine with this machine's real tools added (make test installed them)."""
    for name in ("pgbouncer", "chromium", "llvm-strip", "qemu-aarch64-static"):
        found = system_tools.find(name)
        if found is None:
            pytest.fail(system_tools.missing_message(name))
        fresh_machine.link(Path(found).name, found)
    python313 = system_tools.find("python3.13")
    if python313 is None:
        pytest.fail(system_tools.missing_message("python3.13"))
    return fresh_machine, {"LAMBDA_BUNDLE_PYTHON": python313}


PYTHON313_INSTRUCTION = (
    "  python3.13: `make install && .tools/bin/uv python install 3.13` (uv's own CPython, "
    "found where uv keeps it), or python3.13 on PATH, or a pyenv 3.13, or "
    "LAMBDA_BUNDLE_PYTHON=/path/to/python3.13"
)


def test_a_fresh_machine_is_told_the_one_command_that_installs_every_missing_tool(
    fresh_machine: Machine,
) -> None:
    # when: checked without --install (what a machine that cannot install sees)
    result = fresh_machine.check()

    # then: it stops, naming each missing tool and every package in one apt-get command
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "Missing system tools:",
        "  pgbouncer            the RDS Proxy stand-in (tests/reliability)",
        "  chromium             renders the API docs page (tests/docs)",
        "  llvm-strip           strips the aarch64 Lambda bundle's extensions",
        "  qemu-aarch64-static  runs the aarch64 Lambda bundle on this machine",
        "  python3.13           compiles the aarch64 Lambda bundle's bytecode (the runtime's "
        "version)",
        "To install them:",
        f"  {SUDO}apt-get update && {SUDO}apt-get install -y --no-install-recommends "
        "pgbouncer chromium llvm qemu-user-static",
        PYTHON313_INSTRUCTION,
    ]
    assert fresh_machine.calls() == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only root installs (the apt-get here is fake)")
def test_as_root_it_updates_once_and_installs_the_missing_packages_noninteractively(
    fresh_machine: Machine,
) -> None:
    result = fresh_machine.check("--install")

    lock = "-o DPkg::Lock::Timeout=600"
    assert fresh_machine.calls() == [
        f"DEBIAN_FRONTEND=noninteractive {lock} update -qq",
        f"DEBIAN_FRONTEND=noninteractive {lock} install -y -qq --no-install-recommends "
        "pgbouncer chromium llvm qemu-user-static",
    ]
    # This apt-get installed nothing, so the check after it still stops the run.
    assert result.returncode == 1
    assert "apt-get install -y --no-install-recommends pgbouncer" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only root installs (the apt-get here is fake)")
def test_a_package_apt_cannot_install_keeps_none_of_the_others_out(
    fresh_machine: Machine,
) -> None:
    # given: an apt whose install of all four at once fails (one of them it lacks)
    fresh_machine.fake(
        "apt-get",
        f'echo "$*" >> {fresh_machine.apt_calls}; case "$*" in *"chromium llvm"*) exit 100;; esac',
    )

    result = fresh_machine.check("--install")

    # then: it installs each alone, so the three it has get installed
    install = "-o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends"
    assert fresh_machine.calls() == [
        "-o DPkg::Lock::Timeout=600 update -qq",
        f"{install} pgbouncer chromium llvm qemu-user-static",
        *(
            f"{install} {package}"
            for package in ("pgbouncer", "chromium", "llvm", "qemu-user-static")
        ),
    ]
    assert result.returncode == 1


def test_with_every_tool_present_it_passes_silently_and_calls_no_apt(
    provisioned_machine: tuple[Machine, dict[str, str]],
) -> None:
    machine, env = provisioned_machine

    result = machine.check("--install", **env)

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert machine.calls() == []


def test_a_node_older_than_the_cdk_needs_is_reported_with_what_apt_cannot_do(
    provisioned_machine: tuple[Machine, dict[str, str]],
) -> None:
    # given: Debian 12's own Node.js
    machine, env = provisioned_machine
    (machine.bin / "node").unlink()
    machine.fake("node", 'echo "v18.20.4"')

    result = machine.check("--install", **env)

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "Missing system tools:",
        "  node  the AWS CDK's jsii runtime (tests/infra) and CLI; found v18.20.4 at "
        f"{machine.bin / 'node'}",
        "To install them:",
        "  node: Node.js 20 or newer (this distribution's nodejs is older), from NodeSource's "
        f"apt repository: `{SUDO}{NODESOURCE.format(sudo=SUDO)}`",
    ]
    assert machine.calls() == []  # nothing apt could install


def test_the_node_minimum_is_aws_cdk_libs_own() -> None:
    spec = find_spec("aws_cdk")  # not imported: that would start the jsii runtime
    assert spec is not None and spec.submodule_search_locations
    (tarball,) = Path(spec.submodule_search_locations[0], "_jsii").glob("aws-cdk-lib@*.tgz")
    with tarfile.open(tarball) as archive:
        package_json = archive.extractfile("package/package.json")
        assert package_json is not None
        engines = json.load(io.TextIOWrapper(package_json))["engines"]
    assert engines == {"node": f">= {system_tools.NODE_MAJOR}.0.0"}


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    """make, in this checkout, as a shell runs it (not as the make that may run pytest)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_make_test_checks_the_tools_before_it_builds_the_venv_or_starts_pytest() -> None:
    planned = _make("--dry-run", "--always-make", "test")
    assert planned.returncode == 0, planned.stderr
    dry_run = planned.stdout.splitlines()

    def first(fragment: str) -> int:
        return next(i for i, line in enumerate(dry_run) if fragment in line)

    check = first("-m tests.system_tools --install")
    assert check < first("-m venv") < first("-m pytest")


def _missing(*names: str) -> list[tuple[system_tools.Tool, system_tools.Lookup]]:
    return [(system_tools.BY_NAME[name], system_tools.Lookup(None)) for name in names]


def _report(os_release: str, *names: str, is_root: bool) -> list[str]:
    distro = system_tools.Distro.parse(os_release)
    report = system_tools.report(_missing(*names), distro=distro, has_apt=True, is_root=is_root)
    return report.splitlines()


def test_on_debian_apt_installs_chromium_with_the_rest() -> None:
    distro = system_tools.Distro.parse(DEBIAN_12)
    assert system_tools.packages(_missing("pgbouncer", "chromium", "llvm-strip"), distro) == [
        "pgbouncer",
        "chromium",
        "llvm",
    ]


def test_on_ubuntu_chromium_is_not_asked_of_apt_and_the_rest_still_is() -> None:
    # Ubuntu's apt has chromium only as a transitional package for the snap (no snapd in
    # a container), and a package apt can't install fails the whole apt-get install.
    distro = system_tools.Distro.parse(UBUNTU_24_04)
    missing = _missing("pgbouncer", "chromium", "qemu-aarch64-static")
    assert system_tools.packages(missing, distro) == ["pgbouncer", "qemu-user-static"]

    lines = _report(UBUNTU_24_04, "pgbouncer", "chromium", is_root=False)
    assert lines[-2:] == [
        "  sudo apt-get update && sudo apt-get install -y --no-install-recommends pgbouncer",
        "  chromium: Ubuntu's apt has only a transitional package for the snap: "
        "`sudo snap install chromium`, or where snaps don't run (a container) Google Chrome "
        "(amd64): `sudo apt-get update && sudo apt-get install -y curl ca-certificates && "
        "curl -fsSLO https://dl.google.com/linux/direct/google-chrome-stable_current_amd64.deb"
        " && sudo apt-get install -y ./google-chrome-stable_current_amd64.deb`",
    ]


def test_as_root_the_apt_command_has_no_sudo_and_updates_first() -> None:
    lines = _report(DEBIAN_12, "pgbouncer", "chromium", is_root=True)
    assert lines[-1] == (
        "  apt-get update && apt-get install -y --no-install-recommends pgbouncer chromium"
    )


def test_an_old_node_is_replaced_from_nodesource_where_apt_has_only_an_old_one() -> None:
    for os_release in (DEBIAN_12, UBUNTU_24_04):
        (line,) = [line for line in _report(os_release, "node", is_root=False) if "node:" in line]
        assert line.endswith(
            "from NodeSource's apt repository: `sudo " + NODESOURCE.format(sudo="sudo ") + "`"
        ), line
    (root,) = [line for line in _report(DEBIAN_12, "node", is_root=True) if "node:" in line]
    assert root.endswith(f"`{NODESOURCE.format(sudo='')}`"), root


def test_debian_13_installs_node_from_its_own_apt() -> None:
    (line,) = [line for line in _report(DEBIAN_13, "node", is_root=False) if "node:" in line]
    assert line == (
        "  node: Debian 13's own Node.js is new enough: `sudo apt-get update && "
        "sudo apt-get install -y nodejs npm`"
    )


def test_a_missing_python313_is_one_uv_command_away() -> None:
    # the repository's own uv (make install puts it in .tools), whose CPython builds the
    # bundler finds (tests/infra/test_bundling.py)
    (line,) = [
        line for line in _report(DEBIAN_12, "python3.13", is_root=False) if "python3.13:" in line
    ]
    assert line == (
        "  python3.13: `make install && .tools/bin/uv python install 3.13` (uv's own CPython, "
        "found where uv keeps it), or python3.13 on PATH, or a pyenv 3.13, or "
        "LAMBDA_BUNDLE_PYTHON=/path/to/python3.13"
    )


def test_a_python_older_than_311_is_refused_with_how_to_name_a_newer_one(
    tmp_path: Path,
) -> None:
    # given: Ubuntu 22.04's python3, 3.10
    old = tmp_path / "python3"
    old.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "Python 3.10.12"\nexit 1\n')
    old.chmod(0o755)

    refused = _make("system-tools", f"PYTHON={old}")

    assert refused.returncode != 0
    assert refused.stdout.splitlines() == [
        "Python 3.11 or newer is required (found: Python 3.10.12). Install one and name it,",
        f"e.g. on Ubuntu 22.04: {SUDO}apt-get update && {SUDO}apt-get install -y python3.11 "
        "python3.11-venv",
        "then: make run PYTHON=python3.11 (make test PYTHON=python3.11 likewise)",
    ]
