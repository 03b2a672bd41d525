"""Constrained string types shared by the request schemas.

What a validator here refuses, the JSON schema declares too (a `pattern`), so
clients and test generators know which schema-valid-looking strings are refused.
The patterns are documentation only: the validators keep their own, clearer errors.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

# ECMA-262 and Python regex syntax alike: any string without U+0000.
NUL_FREE_PATTERN = r"^[^\u0000]*$"

# RFC 6761 special-use names, which email_validator refuses as email domains: a copy of
# its SPECIAL_USE_DOMAIN_NAMES (importing it here would load it on every cold start;
# tests/users/test_schema_patterns.py keeps the two equal).
SPECIAL_USE_DOMAINS = ("arpa", "invalid", "local", "localhost", "onion", "test")


def _any_case(word: str) -> str:
    # JSON Schema patterns have no flags: spell case-insensitivity out, `[tT][eE]...`.
    return "".join(f"[{c}{c.upper()}]" for c in word)


# Refuses an address whose domain is, or ends in, a special-use name (`a@b.test`,
# `a@x.LOCAL`), one with a character beyond ASCII before its last `@` (`zoë@example.com`:
# no mail can carry it without SMTPUTF8, which SES lacks), and NUL anywhere. Exact for
# those three refusals; others (malformed addresses the `email` format lets through) are
# only described.
EMAIL_PATTERN = (
    "^(?!.*[.@](?:"
    + "|".join(_any_case(name) for name in SPECIAL_USE_DOMAINS)
    + r")$)(?!.*[^\u0000-\u007f].*@)[^\u0000]*$"
)


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; reject it as bad input instead of failing at INSERT.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def normalize_email(value: str) -> str:
    """Validate syntax (no DNS lookups) and lower-case the whole address.

    An address whose local part goes beyond ASCII is refused: only SMTPUTF8 mail can carry
    it, and SES has none, so its account would never get a verification or reset link. A
    domain beyond ASCII is fine: it is mailed in its IDNA form.
    """
    # Imported here: only registration and profile updates need it, not the cold start.
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from exc
    return result.normalized.lower()


NoNulStr = Annotated[
    str,
    AfterValidator(_no_nul),
    Field(json_schema_extra={"pattern": NUL_FREE_PATTERN}),
]
