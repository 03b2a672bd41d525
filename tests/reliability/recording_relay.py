"""A loopback TCP relay that records what each PostgreSQL client sends: its
StartupMessage, then the type of every message after it.

It forwards every byte unchanged both ways and reads only the client's side: an
optional SSLRequest / GSSENCRequest (8 bytes, answered by the server), then the
StartupMessage, whose parameters it keeps in `startups`, then each message's type
byte (`P` Parse, `B` Bind, `D` Describe, `E` Execute, `H` Flush, `S` Sync, `Q` a simple
query, `X` Terminate: PostgreSQL's protocol docs, "Message Formats") and, for a Parse or
a simple query, its query: kept per connection, in order, in `sent`.

StartupMessage: int32 length (itself included), int32 protocol version (196608,
i.e. 3.0), then NUL-terminated name and value strings, ended by one more NUL. Every
later message: one type byte, then an int32 length (itself included) and the body.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url

PROTOCOL_3_0 = 196608
# Requests a client may send before the StartupMessage; the server answers one byte.
_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104


@dataclass(frozen=True)
class Startup:
    protocol: int
    parameters: list[tuple[str, str]]  # in wire order, duplicates kept


def parse_startup(body: bytes) -> Startup:
    """`body`: the message after its length word."""
    (protocol,) = struct.unpack("!i", body[:4])
    fields = body[4:].split(b"\x00")
    # The list ends with the pair terminator and the split's empty tail.
    assert fields[-2:] == [b"", b""], f"StartupMessage not NUL-terminated: {body!r}"
    names_and_values = [item.decode() for item in fields[:-2]]
    assert len(names_and_values) % 2 == 0, f"odd number of startup strings: {names_and_values}"
    pairs = list(zip(names_and_values[::2], names_and_values[1::2], strict=True))
    return Startup(protocol=protocol, parameters=pairs)


@dataclass(frozen=True)
class Message:
    type: str
    query: str | None = None  # a Parse's statement text, or a simple query's


def parse_query(body: bytes) -> str:
    """A Parse message's query: after the statement's name, both NUL-terminated."""
    return body.split(b"\x00", 2)[1].decode()


def simple_query(body: bytes) -> str:
    """A Query message's text, NUL-terminated."""
    return body.rstrip(b"\x00").decode()


@dataclass
class RecordingRelay:
    target_host: str
    target_port: int
    startups: list[Startup] = field(default_factory=list)
    sent: list[list[Message]] = field(default_factory=list)  # per connection, in order
    _server: asyncio.Server | None = None
    _relays: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def __aenter__(self) -> RecordingRelay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        # A relay may still wait for the server to hang up after the client's Terminate:
        # closing both ends lets it finish (cancelling it makes asyncio log an error), and
        # lets wait_closed() return on Pythons where it waits for every connection.
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()
        outcomes = await asyncio.gather(*self._relays, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome  # e.g. an encrypted startup the relay could not read

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        self._writers.append(client_w)
        server_r, server_w = await asyncio.open_connection(self.target_host, self.target_port)
        self._writers.append(server_w)
        sent: list[Message] = []
        self.sent.append(sent)
        try:
            while True:
                header = await client_r.readexactly(8)
                length, code = struct.unpack("!ii", header)
                body = header[4:] + await client_r.readexactly(length - 8)
                server_w.write(header[:4] + body)
                await server_w.drain()
                if code not in (_SSL_REQUEST, _GSSENC_REQUEST):
                    self.startups.append(parse_startup(body))
                    break
                answer = await server_r.readexactly(1)
                client_w.write(answer)
                await client_w.drain()
                # 'S'/'G': encryption follows and the rest is unreadable here.
                assert answer == b"N", "the relay only reads unencrypted startups"
            await asyncio.gather(
                _pipe_messages(client_r, server_w, sent), _pipe(server_r, client_w)
            )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # one side hung up
        finally:
            for writer in (server_w, client_w):
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()


@contextlib.asynccontextmanager
async def relayed(database_url: str) -> AsyncIterator[tuple[RecordingRelay, str]]:
    """A relay in front of the server of `database_url` (a SQLAlchemy URL), and that URL
    dialling the relay instead."""
    target = make_url(database_url)
    assert target.host is not None and target.port is not None
    async with RecordingRelay(target.host, target.port) as relay:
        through = target.set(host="127.0.0.1", port=relay.port)
        yield relay, through.render_as_string(hide_password=False)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def _pipe_messages(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, messages: list[Message]
) -> None:
    try:
        while header := await reader.read(1):
            length_word = await reader.readexactly(4)
            (length,) = struct.unpack("!i", length_word)
            body = await reader.readexactly(length - 4)
            kind = header.decode()
            query = (
                parse_query(body) if kind == "P" else simple_query(body) if kind == "Q" else None
            )
            messages.append(Message(kind, query))
            writer.write(header + length_word + body)
            await writer.drain()
    finally:
        writer.close()
