"""Constrained string types shared by the request schemas."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; reject it as bad input instead of failing at INSERT.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def normalize_email(value: str) -> str:
    """Validate syntax (no DNS lookups) and lower-case the whole address."""
    # Imported here: only registration and profile updates need it, not the cold start.
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from exc
    return result.normalized.lower()


NoNulStr = Annotated[str, AfterValidator(_no_nul)]
