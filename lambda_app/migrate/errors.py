"""What a failed run may report: the error and where it happened, without the data.

A failed INSERT's message carries its SQL parameters (a password hash, an email), so the
migration function logs and raises only what these return.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from alembic.config import Config
from sqlalchemy.exc import StatementError

MAX_ERROR_MESSAGE_CHARS = 2000
MAX_TRACEBACK_FRAMES = 20
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # lambda_app/


def safe_error_message(exc: BaseException) -> str:
    """The error without SQL parameters. Settings errors are value-free already
    (`SettingsError`)."""
    cause: BaseException = exc
    if isinstance(exc, StatementError) and exc.orig is not None:
        # The driver's own error (e.g. asyncpg's DivisionByZeroError), without the
        # statement and its parameters that SQLAlchemy's message adds.
        cause = exc.orig.__cause__ or exc.orig
    text = f"{type(cause).__name__}: {cause}".strip()
    return text[:MAX_ERROR_MESSAGE_CHARS]


def own_frames(exc: BaseException, config: Config) -> str:
    """Where it failed in our code and in the revision scripts `config` runs: frames only,
    no messages (they may carry SQL parameters), library frames left out. An error raised
    from a cause (the deadline, from the statement it stopped) shows the cause's frames
    first, as Python prints them."""
    own_dirs = tuple(str(path) for path in (PACKAGE_DIR, *_script_dirs(config)))
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__
    frames = [
        frame
        for link in reversed(chain)
        for frame in traceback.extract_tb(link.__traceback__)
        if frame.filename.startswith(own_dirs)
    ]
    return "".join(traceback.format_list(frames[-MAX_TRACEBACK_FRAMES:]))


def _script_dirs(config: Config) -> list[Path]:
    """env.py's folder (the default revisions folder is inside it), and any other ones."""
    location = config.get_main_option("script_location")
    folders = [location] if location else []
    folders += config.get_version_locations_list() or []
    return [Path(folder).resolve() for folder in folders]
