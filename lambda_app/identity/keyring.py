"""The JWT secret's format: the key tokens are signed with now, and the one before it.

    {"current": {"kid": "20250101-1a2b3c4d", "key": "..."},
     "previous": {"kid": "...", "key": "..."} | null}

Tokens name their key in the header (`kid`); the API signs with `current` and accepts
both, so a rotation (lambda_app/handlers/rotate_signing_key.py) signs nobody out: a
token outlives at most one rotation. A secret that is not a JSON object (the plain
random string the stack generated before rotation existed, or `JWT_SECRET` locally) is
a single current key with a kid derived from it, so the tokens it signs keep working
through the first rotation, which turns it into `previous`.

Shared by the API and the rotation function: standard library only. Keys are never
part of a repr or an error message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from lambda_app.core.aws import SecretFormatError

# The same floor as the settings' MIN_JWT_SECRET_LENGTH (tests/identity pins the two
# together); repeated here so the rotation function needs no settings model.
MIN_KEY_LENGTH = 32
# What a kid may look like: it travels in every token header, unencrypted.
_KID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    key: str = field(repr=False)

    @classmethod
    def generate(cls, *, now: dt.datetime | None = None) -> SigningKey:
        """A fresh key: 384 random bits (64 characters), named by its creation date."""
        created = now or dt.datetime.now(dt.UTC)
        return cls(kid=f"{created:%Y%m%d}-{secrets.token_hex(4)}", key=secrets.token_urlsafe(48))

    @classmethod
    def from_plain(cls, key: str) -> SigningKey:
        return cls(kid=derived_kid(key), key=key)


def derived_kid(key: str) -> str:
    """The kid of a key that came without one: a 64-bit fingerprint, which tells nothing
    about a key of hundreds of random bits."""
    return "plain-" + hashlib.sha256(b"jwt-kid\x00" + key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKeys:
    current: SigningKey
    previous: SigningKey | None = None

    def __post_init__(self) -> None:
        if self.previous is not None and self.previous.kid == self.current.kid:
            raise SecretFormatError("JWT secret: current and previous keys share a kid")

    @property
    def all(self) -> tuple[SigningKey, ...]:
        return (self.current,) if self.previous is None else (self.current, self.previous)

    def find(self, kid: str) -> SigningKey | None:
        return next((key for key in self.all if key.kid == kid), None)

    def rotated(self, new: SigningKey) -> SigningKeys:
        """`new` signs from now on; the current key is still accepted, the previous one not."""
        return SigningKeys(current=new, previous=self.current)

    def to_secret_string(self) -> str:
        def entry(key: SigningKey | None) -> dict[str, str] | None:
            return None if key is None else {"kid": key.kid, "key": key.key}

        return json.dumps({"current": entry(self.current), "previous": entry(self.previous)})


def parse_signing_keys(raw: str) -> SigningKeys:
    """The keys in a JWT secret: the JSON format above, or a plain key (see the module doc).

    A value that starts with `{` must be that JSON: a broken key ring is refused rather
    than taken for one odd-looking plain key.
    """
    if not raw.lstrip().startswith("{"):
        return SigningKeys(current=SigningKey.from_plain(raw))
    try:
        data = json.loads(raw)
    except ValueError:
        raise SecretFormatError("JWT secret starts with '{' but is not JSON") from None
    if not isinstance(data, dict):
        raise SecretFormatError("JWT secret is not a JSON object")
    current = _key(data.get("current"), "current")
    if current is None:
        raise SecretFormatError("JWT secret has no current key")
    return SigningKeys(current=current, previous=_key(data.get("previous"), "previous"))


def _key(entry: Any, name: str) -> SigningKey | None:
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise SecretFormatError(f"JWT secret: {name} is not an object with kid and key")
    kid, key = entry.get("kid"), entry.get("key")
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise SecretFormatError(f"JWT secret: {name} has no kid of 1-64 letters, digits, - or _")
    if not isinstance(key, str) or not key:
        raise SecretFormatError(f"JWT secret: {name} has no key")
    return SigningKey(kid=kid, key=key)


def short_keys(keys: SigningKeys) -> list[str]:
    """The kids of the keys shorter than MIN_KEY_LENGTH (too weak to sign with)."""
    return [key.kid for key in keys.all if len(key.key) < MIN_KEY_LENGTH]
