"""The functions' code as CDK assets, bundled on this machine by `infra_cdk.bundling`.

CDK calls `LocalPythonBundler.try_bundle` when it needs an asset; a failure raises
(returning False would make CDK fall back to Docker, which this project never uses).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, IgnoreMode, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from infra_cdk.bundling import (
    BUNDLER_VERSION,
    LAMBDA_TARGET,
    PROJECT_ROOT,
    BundleTarget,
    Flavour,
    build_bundle,
)


@jsii.implements(ILocalBundling)
class LocalPythonBundler:
    """CDK's hook for bundling on the host instead of in a Docker container."""

    def __init__(
        self, *, target: BundleTarget, flavour: Flavour, project_root: Path = PROJECT_ROOT
    ) -> None:
        self.target = target
        self.flavour = flavour
        self.project_root = project_root

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        report = build_bundle(
            Path(output_dir),
            target=self.target,
            flavour=self.flavour.name,
            project_root=self.project_root,
        )
        print(report.summary(), file=sys.stderr)
        return True


def lambda_code(
    flavour: Flavour, *, target: BundleTarget = LAMBDA_TARGET, project_root: Path = PROJECT_ROOT
) -> lambda_.Code:
    """One function's code: an asset bundled locally, hashed from its sources only."""
    return lambda_.Code.from_asset(
        str(project_root),
        exclude=flavour.asset_excludes,
        ignore_mode=IgnoreMode.GIT,
        # SOURCE: the hash comes from the files above plus the bundling options, so
        # it is known before bundling and unchanged sources skip the bundling step.
        asset_hash_type=AssetHashType.SOURCE,
        bundling=BundlingOptions(
            # Never pulled or run: local bundling always succeeds or raises.
            image=DockerImage.from_registry("local-bundling-only"),
            local=LocalPythonBundler(target=target, flavour=flavour, project_root=project_root),
            # Part of the asset hash: a change of target, flavour or recipe is a new asset.
            environment={
                "BUNDLE_TARGET": target.describe(),
                "BUNDLE_FLAVOUR": flavour.name,
                "BUNDLER_VERSION": BUNDLER_VERSION,
            },
        ),
    )
