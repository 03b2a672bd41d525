"""Synthesize each stage once per session, hermetically, with local bundling skipped.

The `aws:cdk:bundling-stacks` context set to [] makes CDK skip asset bundling (the
asset hash still comes from the sources); test_bundling.py builds the real bundles
(both flavours, for this machine) once per session. The context starts from cdk.json's,
so the feature flags match what `cdk synth` uses.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from infra_cdk.bundling import BundleReport

ROOT = Path(__file__).resolve().parents[2]

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

# Options the prod synth turns on, so their resources are checked too.
PROD_OPTIONS = {
    "release_id": "release-2024-01-01-abcdef0",
    "alarm_email": "ops@example.com",
    "first_superuser_email": "admin@example.com",
}


@dataclass
class Synth:
    stage: str
    outdir: Path
    template: dict[str, Any]
    error: str | None  # the synth's failure (e.g. unacknowledged cdk-nag findings)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template["Resources"]

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    def validation_report(self) -> dict[str, Any]:
        return json.loads((self.outdir / "validation-report.json").read_text())


def cdk_json_context() -> dict[str, Any]:
    return dict(json.loads((ROOT / "cdk.json").read_text())["context"])


@pytest.fixture(scope="session")
def _no_aws_credentials() -> Iterator[None]:
    """Synth must not need AWS: hide any credentials and the instance metadata service."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("AWS_") or name.startswith("CDK_DEFAULT_"):
            del os.environ[name]
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    yield
    os.environ.clear()
    os.environ.update(saved)


# Adds the optional GitHub Actions deploy role stack, LambdaApp-ci (infra_cdk/ci.py).
CI_OPTIONS = {"github_repository": "octo-org/octo-repo"}


def synthesize(stage: str, outdir: Path, *, stack: str | None = None, **options: str) -> Synth:
    """Synthesize the app for `stage`; the Synth is of `stack` (default: the stage's own)."""
    from aws_cdk import App

    from infra_cdk.app import build_app, stack_name

    context = {
        **cdk_json_context(),
        "stage": stage,
        "aws:cdk:bundling-stacks": [],
        **options,
    }
    app = App(context=context, outdir=str(outdir))
    build_app(app)
    error = None
    try:
        app.synth()
    except RuntimeError as exc:  # jsii surfaces CDK's ValidationFailed this way
        error = str(exc)
    template_path = outdir / f"{stack or stack_name(stage)}.template.json"
    return Synth(
        stage=stage, outdir=outdir, template=json.loads(template_path.read_text()), error=error
    )


@pytest.fixture(scope="session")
def dev(_no_aws_credentials: None, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize("dev", tmp_path_factory.mktemp("cdk-dev"))


@pytest.fixture(scope="session")
def prod(_no_aws_credentials: None, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize("prod", tmp_path_factory.mktemp("cdk-prod"), **PROD_OPTIONS)


@pytest.fixture(scope="session")
def ci(_no_aws_credentials: None, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    from infra_cdk.app import stack_name

    outdir = tmp_path_factory.mktemp("cdk-ci")
    synth = synthesize("dev", outdir, stack=stack_name("ci"), **CI_OPTIONS)
    return replace(synth, stage="ci")


@pytest.fixture(scope="session", params=["dev", "prod"])
def synth(request: pytest.FixtureRequest) -> Synth:
    """Each stage in turn, for properties both must have."""
    return request.getfixturevalue(request.param)


@dataclass
class Bundle:
    path: Path
    report: BundleReport


@pytest.fixture(scope="session")
def local_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Bundle]:
    """Both flavours of the real bundle for this machine, built once per session.

    Built side by side: each build mostly waits on uv and compileall subprocesses.
    With UV_COMPILE_BYTECODE=1, as the Makefile exports it and as many users set it: the
    bundle's bytecode must be the recipe's whatever uv is told.
    """
    from infra_cdk.bundling import FLAVOURS, build_bundle, local_target

    outs = {name: tmp_path_factory.mktemp(f"bundle-{name}") for name in FLAVOURS}

    def build(name: str) -> Bundle:
        out = outs[name]
        target = local_target(runtime_root=str(out))
        return Bundle(path=out, report=build_bundle(out, target=target, flavour=name))

    with pytest.MonkeyPatch.context() as patch, ThreadPoolExecutor(len(outs)) as pool:
        patch.setenv("UV_COMPILE_BYTECODE", "1")
        futures = {name: pool.submit(build, name) for name in outs}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="session")
def api_bundle(local_bundles: dict[str, Bundle]) -> Bundle:
    return local_bundles["api"]


@pytest.fixture(scope="session")
def migration_bundle(local_bundles: dict[str, Bundle]) -> Bundle:
    return local_bundles["migration"]
