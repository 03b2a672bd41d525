"""The request's connection opened early: taken once by its own engine, closed if unused."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from lambda_app.core import early_connection
from lambda_app.core.early_connection import Opener
from tests.polling import count_backends, wait_until
from tests.reliability.databases import asyncpg_dsn


def _opener(database_url: str, application_name: str) -> Opener:
    async def open_connection() -> Any:
        return await asyncpg.connect(
            **asyncpg_dsn(database_url),  # type: ignore[arg-type]
            server_settings={"application_name": application_name},
        )

    return open_connection


async def _wait_for_backends(database_url: str, application_name: str, count: int) -> None:
    async def reached() -> bool:
        return await count_backends(database_url, application_name=application_name) == count

    await wait_until(reached, lambda: f"expected {count} backend(s) named {application_name}")


@pytest.fixture
def name() -> str:
    return f"early-{uuid.uuid4().hex[:12]}"


async def test_the_connection_is_taken_once_and_only_by_its_opener(
    database_url_for_tests: str, name: str
) -> None:
    opener = _opener(database_url_for_tests, name)
    await early_connection.start(opener)

    assert early_connection.take(_opener(database_url_for_tests, name)) is None  # another engine
    taken = early_connection.take(opener)
    assert taken is not None
    assert early_connection.take(opener) is None
    conn = await taken
    try:
        assert await conn.fetchval("SELECT current_setting('application_name')") == name
    finally:
        await conn.close()
    early_connection.discard()  # nothing left to close
    await _wait_for_backends(database_url_for_tests, name, 0)


async def test_an_unused_connection_is_closed(database_url_for_tests: str, name: str) -> None:
    opened: list[Any] = []
    open_connection = _opener(database_url_for_tests, name)

    async def open_and_keep() -> Any:
        opened.append(await open_connection())
        return opened[-1]

    await early_connection.start(open_and_keep)
    await _wait_for_backends(database_url_for_tests, name, 1)  # it did connect

    early_connection.discard()  # the request ended without a query (a 401, say)

    assert opened[0].is_closed()  # closed there and then, not left to the garbage collector
    await _wait_for_backends(database_url_for_tests, name, 0)


@pytest.fixture
def silent_server() -> Iterator[socket.socket]:
    """A TCP port that accepts connections and never says a word (a frozen database)."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        yield listener
    finally:
        listener.close()


async def test_a_connection_still_being_set_up_is_dropped_without_waiting(
    silent_server: socket.socket,
) -> None:
    port = silent_server.getsockname()[1]

    async def open_connection() -> Any:
        return await asyncpg.connect(host="127.0.0.1", port=port, user="x", timeout=300)

    await early_connection.start(open_connection)
    peer, _ = await asyncio.get_running_loop().run_in_executor(None, silent_server.accept)
    with peer:
        early_connection.discard()  # returns at once: nothing here waits for the server
        peer.settimeout(30)  # a bound against hanging, not a speed target
        # The attempt is dropped: the server side reads its startup request, then EOF.
        received = b""
        while chunk := await asyncio.get_running_loop().run_in_executor(None, peer.recv, 4096):
            received += chunk
        assert received  # the startup (or SSL) request had gone out: a real head start


async def test_a_failed_unused_connection_leaves_no_unretrieved_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        closed_port = probe.getsockname()[1]  # nothing listens here after this block

    async def open_connection() -> Any:
        return await asyncpg.connect(host="127.0.0.1", port=closed_port, user="x", timeout=30)

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        await early_connection.start(open_connection)
        for _ in range(100):
            await asyncio.sleep(0.01)  # let the refused connect finish
        early_connection.discard()
        gc.collect()  # "Task exception was never retrieved" is logged when a task dies
        await asyncio.sleep(0)
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
