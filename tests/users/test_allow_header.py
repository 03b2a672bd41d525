"""A 405 names, in `Allow`, every method its path serves: the methods the schema documents,
and HEAD wherever GET is."""

import httpx

UNUSED_METHOD = "PUT"  # no path serves it


async def test_a_405_allows_every_documented_method_of_its_path(
    client: httpx.AsyncClient,
) -> None:
    # given the methods the OpenAPI schema documents for each path
    paths = (await client.get("/api/openapi.json")).json()["paths"]
    assert {"get", "patch", "delete"} <= set(paths["/api/users/{user_id}"])  # several routes
    for template, operations in paths.items():
        # when a method no route serves is sent there
        response = await client.request(UNUSED_METHOD, template.replace("{user_id}", "1"))

        # then the 405 lists them all, not just the first route's (Starlette's own answer),
        # and HEAD wherever GET is served (core.middleware answers a HEAD as its GET)
        allowed = {m.upper() for m in operations} | ({"HEAD"} if "get" in operations else set())
        assert response.status_code == 405, (template, response.text)
        assert response.headers["allow"] == ", ".join(sorted(allowed))
        assert response.json()["error"]["code"] == "method_not_allowed"


async def test_a_method_users_me_does_not_serve_is_a_405_not_a_user_id(
    client: httpx.AsyncClient, superuser_headers: dict[str, str]
) -> None:
    # OpenAPI matches the concrete /users/me before /users/{user_id}: "me" is no id.
    response = await client.delete("/api/users/me", headers=superuser_headers)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "GET, HEAD, PATCH"
