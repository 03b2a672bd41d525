"""Test-only routes, added to a fresh app to exercise the Lambda plumbing.

The product has no echo, crash or blob route; tests build `create_app()` plus
these and wrap it with `make_handler`, the same wrapper the real handler uses.
"""

from __future__ import annotations

import base64

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from lambda_app.main import create_app

BOOM_MESSAGE = "deliberate failure from a test route"
router = APIRouter(prefix="/api/_test")


@router.api_route("/echo", methods=["GET", "POST", "PUT"])
async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "root_path": request.scope.get("root_path", ""),
            "query": [list(item) for item in request.query_params.multi_items()],
            "cookies": dict(request.cookies),
            "body_b64": base64.b64encode(body).decode(),
            "content_type": request.headers.get("content-type"),
            "client_host": request.client.host if request.client else None,
        }
    )


@router.get("/segment/{segment:path}")
async def segment(segment: str) -> dict[str, str]:
    """The path's tail as the app routed it: how many times it was percent-decoded."""
    return {"segment": segment}


@router.get("/cookies")
async def set_cookies() -> Response:
    response = Response(status_code=204)
    response.set_cookie("session", "s3ss10n", httponly=True, secure=True, samesite="lax")
    response.set_cookie("theme", "dark")
    return response


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError(BOOM_MESSAGE)


@router.get("/blob")
async def blob(size: int) -> Response:
    return Response(blob_bytes(size), media_type="application/octet-stream")


def blob_bytes(size: int) -> bytes:
    """`size` bytes covering every byte value (so no text decoding can pass them through)."""
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def app_with_test_routes() -> FastAPI:
    app = create_app()
    app.include_router(router)
    return app
