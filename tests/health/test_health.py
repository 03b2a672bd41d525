import httpx


async def test_health_does_not_need_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["x-request-id"]


async def test_both_answer_head_like_get_without_a_body(client: httpx.AsyncClient) -> None:
    for path in ("/api/health", "/api/health/ready"):
        got, head = await client.get(path), await client.head(path)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers["content-length"] == str(len(got.content))
    schema = (await client.get("/api/openapi.json")).json()
    assert set(schema["paths"]["/api/health"]) == {"get"}  # HEAD is implied by GET
    wrong = await client.post("/api/health")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, HEAD"
