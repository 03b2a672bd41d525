"""Which statements make RDS Proxy pin a client session to its server connection.

Read from the statement text as PostgreSQL logged it (`statement_log.statements`),
which is what the proxy sees too. Protocol-level prepared statements (asyncpg's
Parse/Bind/Execute, logged as `execute <name>: ...`) don't pin: only SQL-level
PREPARE/EXECUTE/DEALLOCATE do, and their text starts with the keyword.

A cursor pins too, whether SQL-level (`DECLARE`) or asyncpg's protocol-level one (a named
portal, which SQLAlchemy's `stream()` and `yield_per` use): PostgreSQL logs a named
portal's execution as `execute <statement>/<portal>: ...`, and its further fetches as
`execute fetch from <statement>/<portal>: ...`.

Deliberately broader than the proxy in one place: every `SET` counts, `SET LOCAL`
included (the app needs none; a reviewer can decide when one appears).
"""

from __future__ import annotations

import re

# Statement text longer than this pins (RDS Proxy's limit on what it parses).
MAX_UNPINNED_STATEMENT_BYTES = 16 * 1024

# Commands that change or depend on session state when they start a statement.
_PINNING_COMMANDS = re.compile(
    r"(?:SET|RESET|DISCARD|LISTEN|LOAD|PREPARE|EXECUTE|DEALLOCATE|DECLARE)\b", re.IGNORECASE
)
# Calls and clauses that pin wherever they appear (a CTE, a sub-select, a DO block).
_PINNING_ANYWHERE = (
    ("set_config()", re.compile(r"\bset_config\s*\(", re.IGNORECASE)),
    ("explicit nextval()", re.compile(r"\bnextval\s*\(", re.IGNORECASE)),
    ("explicit setval()", re.compile(r"\bsetval\s*\(", re.IGNORECASE)),
    # Session-level only: the `_xact_` variants end with the transaction and don't pin.
    (
        "session advisory lock",
        re.compile(r"\bpg_(?:try_)?advisory_lock(?:_shared)?\s*\(", re.IGNORECASE),
    ),
    (
        "temporary table, sequence or view",
        re.compile(
            r"\b(?:CREATE\s+(?:OR\s+REPLACE\s+)?(?:GLOBAL\s+|LOCAL\s+)?|INTO\s+)TEMP(?:ORARY)?\b",
            re.IGNORECASE,
        ),
    ),
)
_LEADING_NOISE = re.compile(r"^(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()+", re.DOTALL)


def pinning_reason(text: str) -> str | None:
    """Why `text` would pin a proxy session, or None if it would not."""
    if len(text.encode()) > MAX_UNPINNED_STATEMENT_BYTES:
        return f"statement text over {MAX_UNPINNED_STATEMENT_BYTES} bytes"
    for reason, pattern in _PINNING_ANYWHERE:
        if pattern.search(text):
            return reason
    # A simple query may carry several statements: look at the start of each. A `;`
    # inside a string literal can only add a false alarm, never hide a real one.
    for part in text.split(";"):
        command = _PINNING_COMMANDS.match(_LEADING_NOISE.sub("", part))
        if command is not None:
            return f"{command.group(0).upper()} command"
    return None


def portal_pinning_reason(logged_name: str | None) -> str | None:
    """Why a logged extended-protocol execution would pin: a named portal is a cursor."""
    if logged_name is not None and "/" in logged_name:
        return "cursor (a named portal)"
    return None
