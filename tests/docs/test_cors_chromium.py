"""CORS in a real browser: a page on another origin calls the API with `fetch()`.

A tiny http.server on a second loopback port serves one page. Its script registers a user,
gets a token and reads `/api/users/me` with the bearer token from the local gateway (the
API through the Lambda handler, as on AWS), then writes the outcome into the DOM, which
headless Chromium dumps. The browser, not the test, decides what the page may read.
"""

from __future__ import annotations

import html
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from lambda_app.devtools.gateway import LambdaHandler
from tests.fixtures.accounts import Credentials
from tests.fixtures.chromium import rendered_dom
from tests.fixtures.harness import fresh_container, running_gateway

PAGE = b"""<!doctype html>
<html><body><pre id="outcome">pending</pre>
<script>
const query = new URLSearchParams(location.search);
const api = query.get("api"), username = query.get("username"), password = query.get("password");

async function run() {
  const registered = await fetch(api + "/api/auth/register", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({username, email: username + "@example.com", password}),
  });
  const issued = await fetch(api + "/api/auth/token", {
    method: "POST",
    body: new URLSearchParams({username, password}),
  });
  const token = (await issued.json()).access_token;
  const me = await fetch(api + "/api/users/me", {headers: {Authorization: "Bearer " + token}});
  return {
    register: registered.status,
    token: issued.status,
    me: me.status,
    username: (await me.json()).username,
    requestId: me.headers.get("x-request-id"),
  };
}

function show(outcome) {
  document.getElementById("outcome").textContent = JSON.stringify(outcome);
}
run().then(
  (result) => show({ok: true, ...result}),
  (error) => show({ok: false, error: error.name}),
);
</script></body></html>
"""
OUTCOME = re.compile(r'<pre id="outcome">(?P<text>.*?)</pre>', re.DOTALL)


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no line per request on stderr


@pytest.fixture
def page_origin() -> Iterator[str]:
    """The page's server on a free loopback port: a second origin, yielded as one."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _handler_allowing(origin: str, monkeypatch: pytest.MonkeyPatch) -> LambdaHandler:
    """A container's handler, built as Lambda builds it with CORS_ALLOWED_ORIGINS=origin."""
    from lambda_app.core.settings import get_settings
    from lambda_app.handlers.api import _build_container_handler

    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", origin)
    get_settings.cache_clear()
    return _build_container_handler()


@pytest.fixture
def clear_settings() -> Iterator[None]:
    from lambda_app.core.settings import get_settings

    yield
    get_settings.cache_clear()  # after monkeypatch put the environment back


def _outcome(api: str, page: str, credentials: Credentials, profile: Path) -> dict[str, Any]:
    query = urlencode(
        {"api": api, "username": credentials.username, "password": credentials.password}
    )
    dom = rendered_dom(f"{page}/?{query}", profile)
    found = OUTCOME.search(dom)
    assert found, dom[-2000:]
    return dict(json.loads(html.unescape(found["text"])))


def test_a_page_on_an_allowed_origin_registers_logs_in_and_reads_its_account(
    page_origin: str, monkeypatch: pytest.MonkeyPatch, clear_settings: None, tmp_path: Path
) -> None:
    # given: the API allows the page's origin
    credentials = Credentials.new("cors")
    with fresh_container():
        handler = _handler_allowing(page_origin, monkeypatch)
        with running_gateway(handler) as api:
            # when
            outcome = _outcome(api, page_origin, credentials, tmp_path / "profile")

    # then: every call went through, and the page could read the exposed request id
    assert outcome["ok"] is True, outcome
    assert (outcome["register"], outcome["token"], outcome["me"]) == (201, 200, 200)
    assert outcome["username"] == credentials.username
    assert outcome["requestId"]


def test_a_page_on_another_origin_is_blocked_by_the_browser(
    page_origin: str, monkeypatch: pytest.MonkeyPatch, clear_settings: None, tmp_path: Path
) -> None:
    # given: CORS on, for some other origin only
    credentials = Credentials.new("cors")
    with fresh_container():
        handler = _handler_allowing("https://app.example.com", monkeypatch)
        with running_gateway(handler) as api:
            # when
            outcome = _outcome(api, page_origin, credentials, tmp_path / "profile")
            # the preflight was refused, so the browser never sent the registration
            login = httpx.post(f"{api}/api/auth/token", data=credentials.login_form())

    # then: fetch() rejected, as browsers do on a CORS failure
    assert outcome == {"ok": False, "error": "TypeError"}
    assert login.status_code == 401
