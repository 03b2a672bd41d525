"""Opaque random tokens handed to a client once and stored only as a digest.

Refresh tokens, password-reset tokens and email-verification tokens are all 32 random
bytes (`secrets.token_urlsafe`: 43 characters). A fast hash (SHA-256) is right for a
high-entropy random value: no dictionary can guess one, so a slow password hash would
buy nothing, and a database leak still gives no usable token.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_BYTES = 32
# token_urlsafe(32) is 43 characters: request schemas refuse longer strings before any hashing.
TOKEN_MAX_LENGTH = 128


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    """SHA-256, hex: the only form of a token the database holds."""
    return hashlib.sha256(token.encode()).hexdigest()
