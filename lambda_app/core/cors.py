"""CORS for browser clients on other origins (`CORS_ALLOWED_ORIGINS`), handled by the app.

In the app rather than at API Gateway, so `make run`, `make gateway` and Lambda answer
alike; the stack leaves the HTTP API's own CORS off, so nothing answers twice. Starlette's
`CORSMiddleware` does the work, with two changes to how it answers preflights:

- An allowed preflight gets 204 No Content (Starlette: 200 with a body, "OK"), as API
  Gateway's own CORS answers: a preflight's answer is all headers.
- A preflight it refuses (an origin, method or header not allowed) is not answered with
  Starlette's text/plain 400: it goes on to the app, which answers it as it does any
  OPTIONS request (405 in the one error shape, logged), without CORS headers. The browser
  blocks the call either way; the client sees the same thing as with CORS off.

No credentials mode: clients send bearer tokens, never cookies.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from lambda_app.core.middleware import REQUEST_ID_HEADER, TRACE_ID_HEADER

# What the routes use (tests/core/test_cors.py keeps this true), and HEAD, which every GET
# path answers (core.middleware); GET and POST alone would not do: a bearer token or a JSON
# body makes every call a preflighted one.
ALLOWED_METHODS = ("GET", "HEAD", "POST", "PATCH", "DELETE")
ALLOWED_HEADERS = ("Authorization", "Content-Type")
# Readable by a front end beside the CORS-safelisted ones: the ids, to quote in a bug report;
# how long to wait after a 429; why a 401 (the scheme), and what a 405's path does serve.
EXPOSED_HEADERS = (REQUEST_ID_HEADER, TRACE_ID_HEADER, "retry-after", "www-authenticate", "allow")
# Chromium's cap (Firefox allows a day): each preflight the browser repeats is an invocation.
PREFLIGHT_MAX_AGE_SECONDS = 7200
_BODY_HEADERS = {"content-length", "content-type"}


class CorsMiddleware(CORSMiddleware):
    def __init__(self, app: ASGIApp, *, allowed_origins: Collection[str]) -> None:
        super().__init__(
            app,
            allow_origins=allowed_origins,
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            allow_credentials=False,
            expose_headers=EXPOSED_HEADERS,
            max_age=PREFLIGHT_MAX_AGE_SECONDS,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                await self._preflight(scope, receive, send, headers)
                return
        await super().__call__(scope, receive, send)

    async def _preflight(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers
    ) -> None:
        answer = self.preflight_response(request_headers=headers)
        if answer.status_code != 200:  # Starlette's refusal (400): let the app answer
            await self.app(scope, receive, send)
            return
        cors_headers = {k: v for k, v in answer.headers.items() if k not in _BODY_HEADERS}
        await Response(status_code=204, headers=cors_headers)(scope, receive, send)
