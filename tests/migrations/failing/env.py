"""Test-only Alembic environment: runs the real `migrations/env.py` unchanged, so the
failing-migration test exercises the production transaction settings."""

import runpy
from pathlib import Path

runpy.run_path(str(Path(__file__).resolve().parents[3] / "migrations" / "env.py"))
