"""The keys tokens are signed with and checked against, fetched on first use (never at init).

Locally they come from settings (`JWT_SECRET`). On AWS they come from Secrets Manager
(`JWT_SECRET_ARN`), so they never sit in a Lambda environment variable, in the format
of lambda_app.identity.keyring. A process keeps them for `JWT_SECRET_TTL_SECONDS`, so
it signs with a rotated key within that long; it still accepts the previous one. A
token naming a kid the process does not know yet (signed by a container that fetched
the rotated secret first) makes it fetch again, at most once per
UNKNOWN_KID_REFETCH_SECONDS: forged kids cannot turn every request into a fetch.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from lambda_app.core import aws
from lambda_app.core.settings import ApiSettings, check_jwt_secret, get_settings
from lambda_app.identity.keyring import SigningKey, SigningKeys, parse_signing_keys

logger = logging.getLogger(__name__)

# After a failed refresh, keep the cached keys this long before trying again.
STALE_RETRY_SECONDS = 30.0
UNKNOWN_KID_REFETCH_SECONDS = 30.0

# Wall-clock time, as for the database's credentials (lambda_app.db.plan): the monotonic
# clock stands still while Lambda freezes a container between requests, so a container
# serving one request a minute would keep a retired key for hours by it. An age below 0
# (the wall clock stepped back) counts as expired.
Clock = Callable[[], float]


class SigningKeyCache:
    """Signing keys loaded once and kept for `ttl_seconds` (0: loaded every time).

    A failed refresh keeps the cached keys: a Secrets Manager outage must not sign
    anyone out, and the cached keys stay valid until the next rotation but one.
    Blocking (boto3) on a fetch: requests call it through `signing_key_for_request` and
    `current_signing_key_for_request`, which fetch in a worker thread.
    """

    def __init__(
        self, load: Callable[[], SigningKeys], *, ttl_seconds: float, clock: Clock = time.time
    ) -> None:
        self._load = load
        self._ttl = ttl_seconds
        self._clock = clock
        self._keys: SigningKeys | None = None
        self._fetched_at = 0.0
        self._unknown_kid_refetch_at: float | None = None
        self._lock = threading.Lock()

    def get(self) -> SigningKeys:
        with self._lock:
            if self._keys is None:
                self._refetch()
            elif self._expired():
                self._refresh()
            assert self._keys is not None
            return self._keys

    def key_for(self, kid: str) -> SigningKey | None:
        """The key named `kid`, fetching the keys again (rarely) when it is not among them."""
        found = self.get().find(kid)
        if found is not None:
            return found
        with self._lock:
            if not self._may_refetch_for_unknown_kid():
                return None
            self._unknown_kid_refetch_at = self._clock()
            self._refresh()
            assert self._keys is not None
            return self._keys.find(kid)

    def would_fetch(self, kid: str | None = None) -> bool:
        """Whether `get()` (or `key_for(kid)`) would fetch now. Never waits: a fetch under
        way in another thread (one a request gave up on) counts as one."""
        if not self._lock.acquire(blocking=False):
            return True
        try:
            if self._keys is None or self._expired():
                return True
            return kid is not None and (
                self._keys.find(kid) is None and self._may_refetch_for_unknown_kid()
            )
        finally:
            self._lock.release()

    def _expired(self) -> bool:
        return not 0 <= self._clock() - self._fetched_at < self._ttl

    def _may_refetch_for_unknown_kid(self) -> bool:
        last = self._unknown_kid_refetch_at
        return last is None or not 0 <= self._clock() - last < UNKNOWN_KID_REFETCH_SECONDS

    def _refresh(self) -> None:
        try:
            self._refetch()
        except Exception:
            logger.warning("signing key refresh failed; using the cached keys")
            now = self._clock()
            self._fetched_at = now - self._ttl + min(self._ttl, STALE_RETRY_SECONDS)

    def _refetch(self) -> None:
        self._keys = self._load()
        self._fetched_at = self._clock()
        logger.info("loaded the signing keys (current kid %s)", self._keys.current.kid)

    def __repr__(self) -> str:
        return f"SigningKeyCache(ttl_seconds={self._ttl})"


def load_signing_keys(settings: ApiSettings) -> Callable[[], SigningKeys]:
    """What the cache calls: read the secret, parse it, refuse keys too weak to use."""
    if settings.jwt_secret_arn:
        fetch = aws.secret_fetcher(settings.jwt_secret_arn)
    else:
        fetch = settings.jwt_secret.get_secret_value

    def load() -> SigningKeys:
        keys = parse_signing_keys(fetch())
        for key in keys.all:
            check_jwt_secret(key.key, settings.environment)
        return keys

    return load


_cache: SigningKeyCache | None = None
_cache_lock = threading.Lock()


def _signing_keys() -> SigningKeyCache:
    global _cache
    with _cache_lock:
        if _cache is None:
            settings = get_settings()
            _cache = SigningKeyCache(
                load_signing_keys(settings), ttl_seconds=settings.jwt_secret_ttl_seconds
            )
        return _cache


def signing_keys() -> SigningKeys:
    return _signing_keys().get()


def current_signing_key() -> SigningKey:
    """The key new tokens are signed with."""
    return signing_keys().current


def signing_key_for(kid: str) -> SigningKey | None:
    """The key a token's `kid` names, if it is one we accept (current or previous)."""
    return _signing_keys().key_for(kid)


# For requests: a fetch (the first, once per TTL, an unknown kid's) runs in a worker
# thread. Inline, a stalled Secrets Manager would block the event loop past the
# request's deadline (core.deadline), and Lambda would end the request with no answer
# and no log line. Cached keys stay inline: a worker thread costs about 0.3 ms.


async def signing_key_for_request(kid: str) -> SigningKey | None:
    """`signing_key_for`, fetching off the event loop."""
    cache = _signing_keys()
    if cache.would_fetch(kid):
        return await asyncio.to_thread(cache.key_for, kid)
    return cache.key_for(kid)


async def current_signing_key_for_request() -> SigningKey:
    """`current_signing_key`, fetching off the event loop."""
    cache = _signing_keys()
    if cache.would_fetch():
        return (await asyncio.to_thread(cache.get)).current
    return cache.get().current


def clear_cache() -> None:
    """Forget the keys (and the settings they were loaded with): tests, after a change."""
    global _cache
    with _cache_lock:
        _cache = None
