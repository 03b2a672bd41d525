"""Context managers shared by the handler, gateway and docs tests."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from lambda_app.local.gateway import LambdaHandler, make_gateway_server


@contextlib.contextmanager
def fresh_container() -> Iterator[None]:
    """Like a new Lambda container: no engine yet, the app creates its own on first use.

    The engine and session factory other tests installed are put back afterwards.
    """
    from lambda_app.core import db

    saved_engine, saved_override = db._engine, db._sessionmaker_override
    db.set_engine(None)
    db.set_sessionmaker(None)
    try:
        yield
    finally:
        db.set_engine(saved_engine)
        db.set_sessionmaker(saved_override)


@contextlib.contextmanager
def running_gateway(
    handler: LambdaHandler | None = None, *, stage: str = "$default"
) -> Iterator[str]:
    """The local gateway on a free loopback port, serving from a thread; yields its base URL."""
    server = make_gateway_server("127.0.0.1", 0, handler=handler, stage=stage)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
