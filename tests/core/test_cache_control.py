"""No cache keeps an answer of the API (`Cache-Control: no-store`), unless the route says
otherwise: the docs UI's files are cached and revalidated with their ETag."""

from __future__ import annotations

import httpx

from lambda_app.models import User


async def test_api_answers_say_no_store_errors_included(
    client: httpx.AsyncClient, user_headers: dict[str, str], user: User
) -> None:
    answers = [
        await client.get("/api/users/me", headers=user_headers),
        await client.head("/api/users/me", headers=user_headers),
        await client.get("/api/users/me"),  # 401
        await client.get("/api/nowhere"),  # 404
        await client.post(
            "/api/auth/register", content=b"[", headers={"content-type": "application/json"}
        ),
        await client.get("/api/openapi.json"),
    ]
    for answer in answers:
        assert answer.headers.get_list("cache-control") == ["no-store"], answer.request.url


async def test_the_docs_files_are_revalidated_not_refetched(client: httpx.AsyncClient) -> None:
    first = await client.get("/api/doc/static/swagger-ui.css")
    again = await client.get(
        "/api/doc/static/swagger-ui.css", headers={"if-none-match": first.headers["etag"]}
    )
    assert first.status_code == 200 and again.status_code == 304
    for answer in (first, again):
        assert answer.headers.get_list("cache-control") == ["no-cache"]
