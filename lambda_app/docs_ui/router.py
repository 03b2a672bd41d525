"""Interactive API docs served entirely from the package (no CDN).

Swagger UI's assets ship in `static/` (swagger-ui-dist, Apache-2.0), so the docs
also work inside a private network. Every URL is built from the request's
`root_path`, so behind an API Gateway stage prefix (`/prod/api/doc`) the page
loads `/prod/api/openapi.json` and `/prod/api/doc/static/...`.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).parent / "static"
DOCS_PATH = "/api/doc"
STATIC_PATH = f"{DOCS_PATH}/static"
OPENAPI_PATH = "/api/openapi.json"

router = APIRouter(include_in_schema=False)
_RANGE_HEADERS = (b"range", b"if-range")


class WholeFiles(StaticFiles):
    """The assets, always whole, and revalidated with their ETag before a cached copy is used.

    A `Range` header is ignored, as RFC 9110 allows.

    Starlette answers a malformed or unsupported range with a plain-text 400 or 416,
    outside the API's one error shape; and on Lambda, Mangum buffers the whole response
    anyway, so sending a part saves nothing.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in _RANGE_HEADERS]

        async def send_no_ranges(message: Message) -> None:  # nor offers them
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message["headers"] if k != b"accept-ranges"]
                # they change with a release: cached, but asked after every time (a 304)
                message = {**message, "headers": [*kept, (b"cache-control", b"no-cache")]}
            await send(message)

        await super().__call__({**scope, "headers": headers}, receive, send_no_ranges)


@router.get(DOCS_PATH, response_class=HTMLResponse)
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    return get_swagger_ui_html(
        openapi_url=f"{root}{OPENAPI_PATH}",
        title="lambda_app API",
        swagger_js_url=f"{root}{STATIC_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{STATIC_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{root}{STATIC_PATH}/favicon-32x32.png",
        oauth2_redirect_url=f"{root}{DOCS_PATH}/oauth2-redirect",
        swagger_ui_parameters={"persistAuthorization": False},
    )


@router.get(f"{DOCS_PATH}/oauth2-redirect", response_class=HTMLResponse)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()
