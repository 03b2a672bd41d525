"""One function process, started the way Lambda's python3.13 runtime starts it, on arm64.

`qemu-aarch64-static` runs the arm64 CPython from the cached root, as an unprivileged
user like Lambda's, with `python3.13 -m awslambdaric <handler>` in the bundle's folder,
against our Runtime API emulator. `-L root` makes the guest's loader and shared
libraries (`/lib/ld-linux-aarch64.so.1`, `/usr/lib/aarch64-linux-gnu/...`) the root's.

The bundle, the runtime folder and the interpreter keep this machine's paths: qemu
resolves only some system calls under `-L` (not `faccessat`, so `os.access` would see
the host's files), and a /var/task that exists for some calls and not others would
make failures of its own. Where Lambda has /var/task and /var/runtime, the environment
names these paths.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.lambda_target.arm64_runtime import QEMU, TargetRuntime
from tests.lambda_target.runtime_api import FunctionExited, InitError, Invocation, RuntimeApi

# Lambda's arm64 functions run on Graviton2, a Neoverse N1 core. qemu's default "max" CPU
# also emulates pointer authentication, which Debian's arm64 binaries use on every call:
# that alone makes them about eight times slower.
QEMU_CPU = "neoverse-n1"
REGION = "eu-central-1"
ACCOUNT = "123456789012"
# Lambda runs functions as an unprivileged user; as root, permission bits would not stop
# a write to the read-only bundle.
FUNCTION_USER = "nobody"
STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class FunctionConfig:
    name: str
    handler: str
    memory_mb: int
    timeout_s: float
    environment: Mapping[str, str] = field(default_factory=dict)  # what CDK would set
    # A published version's init for a SnapStart snapshot, not an on-demand cold start.
    snap_start: bool = False

    def with_environment(self, **variables: str) -> FunctionConfig:
        return dataclasses.replace(self, environment={**self.environment, **variables})

    @property
    def version(self) -> str:
        return "1" if self.snap_start else "$LATEST"  # SnapStart applies to published versions

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.name}"


def lambda_environment(
    config: FunctionConfig, *, runtime_api: str, task_root: Path, runtime_dir: Path
) -> dict[str, str]:
    """The variables Lambda's python3.13 runtime defines, then the function's own.

    https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime
    """
    day = time.strftime("%Y/%m/%d", time.gmtime())
    initialization_type = "snap-start" if config.snap_start else "on-demand"
    task, runtime = str(task_root), str(runtime_dir)
    return {
        "_HANDLER": config.handler,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_LAMBDA_FUNCTION_NAME": config.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": config.version,
        "AWS_LAMBDA_INITIALIZATION_TYPE": initialization_type,
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{day}/[{config.version}]{secrets.token_hex(16)}",
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "LAMBDA_TASK_ROOT": task,
        "LAMBDA_RUNTIME_DIR": runtime,
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "LD_LIBRARY_PATH": (
            f"/var/lang/lib:/lib64:/usr/lib64:{runtime}:{runtime}/lib:{task}:{task}/lib:/opt/lib"
        ),
        # Lambda's sys.path: the bundle first, the runtime's packages after it.
        "PYTHONPATH": f"{task}:{runtime}",
        # No credentials here, and no metadata service to ask for some: a stray AWS
        # call fails at once instead of reaching for the network.
        "AWS_EC2_METADATA_DISABLED": "true",
        **config.environment,
    }


def _user_switch() -> dict[str, Any]:
    if os.geteuid() != 0:
        return {}  # already unprivileged: the read-only bits hold
    entry = pwd.getpwnam(FUNCTION_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


@dataclass
class FunctionProcess:
    config: FunctionConfig
    api: RuntimeApi
    process: subprocess.Popen[bytes]
    started_at: float
    stdout_path: Path
    stderr_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def uid(self) -> int:
        """The user the function runs as (read while it runs)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])

    def invoke(self, event: Any, *, timeout_s: float | None = None) -> Invocation:
        with self._explained():
            return self.api.invoke(event, alive=self.alive, timeout_s=timeout_s)

    def wait_init_error(self, *, timeout_s: float) -> InitError:
        with self._explained():
            return self.api.wait_init_error(alive=self.alive, timeout_s=timeout_s)

    def wait_snapshot(self, *, timeout_s: float) -> None:
        """Until Lambda would snapshot it (SnapStart: init and before-snapshot hooks done)."""
        with self._explained():
            self.api.wait_snapshot(alive=self.alive, timeout_s=timeout_s)

    def restore(self) -> None:
        """Let it go on as a container restored from the snapshot: after-restore hooks next."""
        self.api.restore()

    def wait_restore_error(self, *, timeout_s: float) -> InitError:
        with self._explained():
            return self.api.wait_restore_error(alive=self.alive, timeout_s=timeout_s)

    @contextlib.contextmanager
    def _explained(self) -> Iterator[None]:
        """A function that died or hung: say what it printed last."""
        try:
            yield
        except (FunctionExited, TimeoutError) as exc:
            tail = f"--- stdout:\n{self.stdout[-3000:]}\n--- stderr:\n{self.stderr[-3000:]}"
            raise type(exc)(f"{exc} (exit code {self.process.poll()})\n{tail}") from None

    def wait_exit(self, *, timeout_s: float) -> int:
        return self.process.wait(timeout=timeout_s)

    @property
    def init_duration_s(self) -> float:
        """From process start to the runtime's first poll: Lambda's Init Duration."""
        assert self.api.first_poll_at is not None, "the function never finished init"
        return self.api.first_poll_at - self.started_at

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def running_function(
    bundle: Path,
    target: TargetRuntime,
    config: FunctionConfig,
    *,
    logs: Path,
    verbose: bool = False,
) -> Iterator[FunctionProcess]:
    """Start the function; stop it (and the API) on the way out, whatever happened."""
    logs.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = logs / f"{config.name}.stdout", logs / f"{config.name}.stderr"
    qemu = shutil.which(QEMU)
    assert qemu is not None, f"{QEMU} not found (apt-get install -y qemu-user-static)"
    with (
        RuntimeApi(function_arn=config.arn, timeout_s=config.timeout_s) as api,
        open(stdout_path, "wb") as stdout,
        open(stderr_path, "wb") as stderr,
    ):
        command = [
            qemu,
            "-L",
            str(target.root),
            "-cpu",
            QEMU_CPU,
            str(target.python),
            *(["-v"] if verbose else []),
            "-m",
            "awslambdaric",
            config.handler,
        ]
        environment = lambda_environment(
            config, runtime_api=api.address, task_root=bundle, runtime_dir=target.runtime
        )
        started_at = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=bundle,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            # Its own session: a Ctrl-C in the terminal reaches pytest, which stops it.
            start_new_session=True,
            **_user_switch(),
        )
        function = FunctionProcess(
            config=config,
            api=api,
            process=process,
            started_at=started_at,
            stdout_path=stdout_path,
            stderr_path=stderr_path,
        )
        try:
            yield function
        finally:
            function.stop()
