"""Fixtures for calling the Lambda handlers as the Lambda runtime does.

Handler tests are synchronous: Mangum runs the app on the handler's own event
loop, so nothing bound to pytest-asyncio's loop (the rolled-back `session`) may
be used by the app here. Users are created through the API instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from lambda_app.core.logging import JsonFormatter
from tests.fixtures.harness import fresh_container
from tests.fixtures.lambda_events import Handler


@pytest.fixture
def lambda_container() -> Iterator[None]:
    """A fresh container: no engine yet, the handler creates its own on first use."""
    with fresh_container():
        yield


@pytest.fixture
def api_handler(lambda_container: None) -> Handler:
    """The real entry point, `lambda_app.handlers.api.handler`."""
    from lambda_app.handlers.api import handler

    return handler


@pytest.fixture
def echo_app_handler(lambda_container: None) -> Handler:
    """A handler around `create_app()` plus test-only routes (echo, cookies, boom, blob)."""
    from lambda_app.handlers.api import make_handler
    from tests.handlers.extra_routes import app_with_test_routes

    return make_handler(app_with_test_routes())


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every log line the process writes during the test, formatted as in production."""
    collect = _Collect()
    root = logging.getLogger()
    root.addHandler(collect)
    yield collect.lines
    root.removeHandler(collect)
