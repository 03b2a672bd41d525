"""What CodeDeploy remembers of the API's traffic shifts: which version `live` served before
a version moved in, read from the AppSpec of the deployment that moved it.

CloudFormation's CodeDeployLambdaAliasUpdate starts each deployment with a Lambda AppSpec
(`Resources: [{<name>: {Type: AWS::Lambda::Function, Properties: {Name, Alias,
CurrentVersion, TargetVersion}}}]`), which CodeDeploy stores as the deployment's revision.
It may be JSON or YAML, with the versions as strings or numbers. GetDeployment and
BatchGetDeployments name the revision but return its content as null: the content comes
from GetApplicationRevision, by the revision's sha256.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

SUCCEEDED = ["Succeeded"]
# Deployments that moved `live` back (CloudFormation rolling a stack update back, CodeDeploy
# redeploying the last good revision): their CurrentVersion is the version refused.
ROLLBACK_CREATORS = frozenset({"CloudFormationRollback", "codeDeployRollback"})
BATCH_GET_LIMIT = 25  # deployments per BatchGetDeployments call
# The revision types that carry an AppSpec inline, and the field that holds it.
APPSPEC_FIELDS = {"AppSpecContent": "appSpecContent", "String": "string"}


@dataclass(frozen=True)
class Shift:
    """A deployment that moved the alias from one version to another."""

    deployment_id: str
    from_version: str
    to_version: str


def _succeeded_deployments(codedeploy: Any, application: str, group: str) -> Iterator[str]:
    for page in codedeploy.get_paginator("list_deployments").paginate(
        applicationName=application, deploymentGroupName=group, includeOnlyStatuses=SUCCEEDED
    ):
        yield from page.get("deployments", [])


def _newest_first(codedeploy: Any, ids: list[str]) -> list[dict[str, Any]]:
    """The deployments' details, newest first: ListDeployments promises no order."""
    infos: list[dict[str, Any]] = []
    for start in range(0, len(ids), BATCH_GET_LIMIT):
        batch = ids[start : start + BATCH_GET_LIMIT]
        infos += codedeploy.batch_get_deployments(deploymentIds=batch)["deploymentsInfo"]
    return sorted(infos, key=lambda info: info["createTime"], reverse=True)


def _appspec_text(codedeploy: Any, application: str, revision: dict[str, Any]) -> str | None:
    kind = revision.get("revisionType", "")
    field = APPSPEC_FIELDS.get(kind)
    if field is None:
        return None
    stored = revision.get(field) or {}
    if stored.get("content"):
        return str(stored["content"])
    if not stored.get("sha256"):
        return None
    found = codedeploy.get_application_revision(
        applicationName=application,
        revision={"revisionType": kind, field: {"sha256": stored["sha256"]}},
    )
    content = ((found.get("revision") or {}).get(field) or {}).get("content")
    return str(content) if content else None


def parse_appspec(text: str) -> Any:
    """An AppSpec in JSON or YAML; None if it is neither."""
    import yaml  # a development tool's dependency; JSON is tried first

    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def _field(mapping: Any, name: str) -> Any:
    """`mapping[name]`, whatever its case (AppSpec keys are written by hand, too)."""
    if not isinstance(mapping, dict):
        return None
    return next((v for k, v in mapping.items() if str(k).lower() == name.lower()), None)


def _name(function: Any) -> str:
    """A function's name, from its name or its (qualified) ARN."""
    text = str(function)
    return text.split(":function:", 1)[1].split(":", 1)[0] if ":function:" in text else text


def alias_shift(appspec: Any, *, function: str, alias: str) -> tuple[str, str] | None:
    """(CurrentVersion, TargetVersion) of the AppSpec's entry for `function`'s `alias`."""
    resources = _field(appspec, "Resources")
    for entry in resources if isinstance(resources, list) else [resources]:
        for resource in entry.values() if isinstance(entry, dict) else []:
            properties = _field(resource, "Properties")
            if (
                _field(resource, "Type") != "AWS::Lambda::Function"
                or _name(_field(properties, "Name")) != _name(function)
                or str(_field(properties, "Alias")).rsplit(":", 1)[-1] != alias
            ):
                continue
            current, target = (_field(properties, k) for k in ("CurrentVersion", "TargetVersion"))
            if current is not None and target is not None:
                return str(current), str(target)
    return None


def shift_to(
    codedeploy: Any, *, application: str, group: str, function: str, alias: str, version: str
) -> Shift | None:
    """The group's most recent successful deployment that moved `alias` to `version`."""
    ids = list(_succeeded_deployments(codedeploy, application, group))
    for info in _newest_first(codedeploy, ids):
        if info.get("creator") in ROLLBACK_CREATORS:
            continue
        text = _appspec_text(codedeploy, application, info.get("revision") or {})
        shift = alias_shift(parse_appspec(text), function=function, alias=alias) if text else None
        if shift is not None and shift[1] == version:
            return Shift(info["deploymentId"], *shift)
    return None
