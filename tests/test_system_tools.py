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
# What `make` itself runs it with: the machine's python3, not .venv's.
MACHINE_PYTHON = Path(sys.base_prefix) / "bin" / "python3"
# Besides python3: what the README asks for, and a shell with a few of coreutils.
ESSENTIALS = ("make", "git", "node", "sh", "bash", "env", "cat", "ls")
SUDO = "" if os.geteuid() == 0 else "sudo "


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
        return subprocess.run(
            [str(MACHINE_PYTHON), "-m", "tests.system_tools", *args],
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
    "  python3.13: Python 3.13 as python3.13 on PATH, or `pyenv install 3.13` (found in "
    "$PYENV_ROOT/versions, default ~/.pyenv), or LAMBDA_BUNDLE_PYTHON=/path/to/python3.13. "
    "Debian 12's apt has no python3.13 (Debian 13's has: apt-get install python3.13)"
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
        f"  {SUDO}apt-get install -y --no-install-recommends "
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
        "  node: Node.js 20 or newer, e.g. from https://nodejs.org/en/download or NodeSource's "
        "apt repository (Debian 12's own nodejs is 18, too old)",
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


def test_make_test_checks_the_tools_before_it_builds_the_venv_or_starts_pytest() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    dry_run = subprocess.run(
        ["make", "--dry-run", "--always-make", "test"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()

    def first(fragment: str) -> int:
        return next(i for i, line in enumerate(dry_run) if fragment in line)

    check = first("-m tests.system_tools --install")
    assert check < first("-m venv") < first("-m pytest")
