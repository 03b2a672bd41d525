"""Zipped size of the API bundle built for the Lambda target, by the CDK app's own bundler."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import Any


def _zipped_by_top_level(folder: Path) -> dict[str, int]:
    """Compressed bytes per top-level entry (package), to see what the size is made of."""
    sizes: dict[str, int] = {}
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(folder))
        with zipfile.ZipFile(handle) as archive:
            for info in archive.infolist():
                top = info.filename.split("/", 1)[0]
                sizes[top] = sizes.get(top, 0) + info.compress_size
    return dict(sorted(sizes.items(), key=lambda item: item[1], reverse=True))


def lambda_bundle_size(scratch: Path) -> dict[str, Any]:
    """{"status": "ok", "zipped_bytes": ..., ...}, or {"status": "missing"|"failed", "reason"}."""
    try:
        from infra_cdk.bundling import LAMBDA_TARGET, build_bundle
    except ImportError as exc:
        return {"status": "missing", "reason": f"infra_cdk bundler not importable: {exc}"}
    out = scratch / "lambda-bundle"
    out.mkdir(parents=True)
    try:
        report = build_bundle(out, target=LAMBDA_TARGET)
    except Exception as exc:  # any bundling failure is reported, not fatal to the run
        return {"status": "failed", "reason": f"{type(exc).__name__}: {str(exc)[-1500:]}"}
    by_package = _zipped_by_top_level(out)
    return {
        "status": "ok",
        "path": str(out),
        "target": report.target.describe(),
        "flavour": getattr(report, "flavour", "api"),
        "extension_debug_info_stripped": getattr(report, "strip_tool", None) is not None,
        "zipped_bytes": report.zipped_bytes,
        "unzipped_bytes": report.unzipped_bytes,
        "zipped_mb": round(report.zipped_bytes / 1_000_000, 2),
        "unzipped_mb": round(report.unzipped_bytes / 1_000_000, 2),
        "largest_zipped_entries_kb": {
            name: round(size / 1000) for name, size in list(by_package.items())[:12]
        },
    }
