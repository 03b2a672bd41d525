"""Alembic, run programmatically (no subprocess): shared by the CLI and the migration Lambda."""

from __future__ import annotations

import os
from pathlib import Path

from alembic.config import Config

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def migrations_dir() -> Path:
    """`migrations/` beside the package: the repo root locally, the bundle root on Lambda."""
    return Path(os.environ.get("MIGRATIONS_DIR", PROJECT_ROOT / "migrations"))


def alembic_config(script_location: Path | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location or migrations_dir()))
    return config


def upgrade_to_head(database_url: str) -> None:
    """Apply every pending migration (synchronous; env.py drives the async engine)."""
    from alembic import command

    config = alembic_config()
    config.attributes["url"] = database_url
    command.upgrade(config, "head")
