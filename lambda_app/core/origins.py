"""Browser origins as CORS compares them: parsed, checked and written the way browsers send them.

A leaf (standard library only), so both the API's settings and the CDK app (which checks
`-c cors_allowed_origins` at synth, before a deploy could fail at the function's init)
read the list the same way.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

ANY_ORIGIN = "*"
_SCHEMES = {"http": 80, "https": 443}
_HOST = re.compile(
    r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)
_NOT_AN_ORIGIN = (
    "expected scheme://host[:port] with scheme http or https and no path, query or user info"
)


def parse_origins(value: object) -> tuple[str, ...]:
    """The origins in `value` (comma-separated text, or a sequence), normalized, in order.

    Errors name an entry by its position, never its text: settings errors carry no values.
    """
    if isinstance(value, str):
        entries = [entry.strip() for entry in value.split(",")]
    elif isinstance(value, list | tuple) and all(isinstance(entry, str) for entry in value):
        entries = [entry.strip() for entry in value]
    else:
        raise ValueError("expected a comma-separated list of origins")
    entries = [entry for entry in entries if entry]  # tolerate "a,b," and stray spaces
    if ANY_ORIGIN in entries:
        if len(entries) > 1:
            raise ValueError(f"'{ANY_ORIGIN}' (any origin) must be the only entry")
        return (ANY_ORIGIN,)
    origins: list[str] = []
    for position, entry in enumerate(entries, start=1):
        origin = normalize_origin(entry)
        if origin is None:
            raise ValueError(f"entry {position} is not an origin: {_NOT_AN_ORIGIN}")
        if origin not in origins:
            origins.append(origin)
    return tuple(origins)


def normalize_origin(text: str) -> str | None:
    """`text` as a browser writes it in `Origin` (lower case, no default port), or None.

    A trailing `/` is accepted (it is the empty path). Hosts are ASCII: an internationalized
    name goes in its punycode form (`xn--…`), as the browser sends it.
    """
    if not text.isascii() or "?" in text or "#" in text or "\\" in text:
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:  # a port that isn't a number in range, a broken IPv6 literal
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname  # lower-cased by urlsplit
    if (
        scheme not in _SCHEMES
        or not host
        or parts.username is not None
        or parts.password is not None
        or parts.path not in ("", "/")
        or parts.netloc.endswith(":")  # "https://host:" — an empty port
        or port == 0
    ):
        return None
    if parts.netloc.startswith("[") or ":" in host:
        try:
            host = f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            return None
    elif not _HOST.fullmatch(host):
        return None
    if port is not None and port != _SCHEMES[scheme]:
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"
