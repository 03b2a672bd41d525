"""TCP keepalive probes early enough for a NAT to keep a long, silent connection.

A synchronous invoke of the migration function sends nothing back for as long as the
migration runs, up to 15 minutes. Middleboxes forget an idle flow long before that: an AWS
NAT gateway after 350 s, Azure's SNAT (GitHub-hosted runners) after about 4 minutes. The
answer then never arrives. botocore's `tcp_keepalive` only turns SO_KEEPALIVE on, and the
kernel's defaults wait 2 hours (Linux's tcp_keepalive_time) before the first probe.
"""

from __future__ import annotations

import socket
from typing import Any

IDLE_SECONDS = 60  # the first probe, well inside the shortest of those idle limits
INTERVAL_SECONDS = 30
PROBES = 5  # unanswered probes before the kernel gives the connection up: 60 + 5 x 30 s

SocketOption = tuple[int, int, int]


def probe_options() -> list[SocketOption]:
    """The probe timings this platform lets a socket set (Linux: all three; macOS names
    the idle time TCP_KEEPALIVE)."""
    idle = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)
    wanted = [
        (idle, IDLE_SECONDS),
        (getattr(socket, "TCP_KEEPINTVL", None), INTERVAL_SECONDS),
        (getattr(socket, "TCP_KEEPCNT", None), PROBES),
    ]
    return [(socket.IPPROTO_TCP, option, value) for option, value in wanted if option is not None]


def send_early_probes(client: Any) -> None:
    """Make every connection `client` opens from now on probe after IDLE_SECONDS.

    botocore has no public way in: its Config takes only `tcp_keepalive` (a boolean), and
    the socket options it computes go straight to the client's URLLib3Session, which hands
    that same list to urllib3's pool manager and, through it, to each new connection. So the
    list is extended where it lives, before the client has connected.
    tests/test_release.py reads the options back from a real socket of the client, and
    fails if a botocore upgrade moves them.
    """
    options: list[SocketOption] = client._endpoint.http_session._socket_options
    options.extend(option for option in probe_options() if option not in options)
