"""The OpenAPI schema tells the truth about paths, status codes and the error shape."""

import httpx
import pytest

from lambda_app.docs_ui.router import STATIC_DIR


async def test_openapi_is_served_and_declares_the_contract(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    expected = {
        ("/api/health", "get"): {"200"},
        ("/api/health/ready", "get"): {"200", "503"},
        ("/api/auth/register", "post"): {"201", "409", "422"},
        ("/api/auth/token", "post"): {"200", "401", "403", "422", "429"},
        ("/api/auth/password-recovery", "post"): {"202", "413", "422", "503"},
        ("/api/auth/reset-password", "post"): {"204", "400", "413", "422"},
        ("/api/auth/verify-email", "post"): {"204", "400", "413", "422"},
        ("/api/users/me/verify-email", "post"): {"202", "401", "409", "429", "503"},
        ("/api/users/me", "get"): {"200", "401"},
        ("/api/users/me", "patch"): {"200", "400", "401", "409", "422", "429"},
        ("/api/users/me/password", "post"): {"204", "400", "401", "422"},
        ("/api/users", "get"): {"200", "401", "403", "422"},
        ("/api/users/{user_id}", "get"): {"200", "401", "404", "422"},
        ("/api/users/{user_id}", "patch"): {"200", "401", "403", "404", "409", "422"},
        ("/api/users/{user_id}", "delete"): {"204", "401", "403", "404", "409", "422"},
    }
    for (path, method), statuses in expected.items():
        declared = set(paths[path][method]["responses"])
        assert statuses <= declared, (path, method, declared)
        for status in declared - {"200", "201", "202", "204"}:
            ref = paths[path][method]["responses"][status]["content"]["application/json"]["schema"][
                "$ref"
            ]
            assert ref == "#/components/schemas/ErrorBody"
    assert "hashed_password" not in response.text


async def test_a_user_id_is_declared_as_the_int4_it_is(client: httpx.AsyncClient) -> None:
    # A plain integer, whatever checks its spelling (`+1` and `1_0` are refused as 422s).
    schema = (await client.get("/api/openapi.json")).json()
    for method, operation in schema["paths"]["/api/users/{user_id}"].items():
        [parameter] = operation["parameters"]
        declared = {key: parameter["schema"].get(key) for key in ("type", "minimum", "maximum")}
        assert declared == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}, method


async def test_the_paging_parameters_are_declared_as_the_integers_they_are(
    client: httpx.AsyncClient,
) -> None:
    # As for ids, their spelling check must not hide their bounds from the schema.
    schema = (await client.get("/api/openapi.json")).json()
    parameters = schema["paths"]["/api/users"]["get"]["parameters"]
    declared = {
        p["name"]: {key: p["schema"].get(key) for key in ("type", "minimum", "maximum")}
        for p in parameters
    }
    assert declared == {
        "limit": {"type": "integer", "minimum": 1, "maximum": 100},
        "cursor": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
    }


async def test_every_401_and_429_declares_the_header_it_is_sent_with(
    client: httpx.AsyncClient,
) -> None:
    # The app sends a challenge with every 401 and how long to wait with every 429
    # (schemathesis holds each answer to what is declared here).
    schema = (await client.get("/api/openapi.json")).json()
    declared: dict[str, list[str]] = {"401": [], "429": []}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, header, header_schema in (
                ("401", "WWW-Authenticate", {"type": "string"}),
                ("429", "Retry-After", {"type": "integer", "minimum": 1}),
            ):
                if status in operation["responses"]:
                    headers = operation["responses"][status].get("headers", {})
                    assert headers.get(header, {}).get("required") is True, (path, method)
                    assert headers[header]["schema"] == header_schema, (path, method)
                    declared[status].append(f"{method.upper()} {path}")
    assert "POST /api/auth/token" in declared["401"] and "GET /api/users/me" in declared["401"]
    assert set(declared["429"]) == {
        "POST /api/auth/token",
        "PATCH /api/users/me",
        "POST /api/users/me/password",
        "POST /api/users/me/verify-email",
    }


async def test_unknown_route_uses_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "form"),
    [
        ("GET", "/api/users/", None),
        ("POST", "/api/auth/token/", {"username": "someone", "password": "a password"}),
    ],
)
async def test_a_trailing_slash_is_the_404_of_an_unknown_route(
    client: httpx.AsyncClient, method: str, path: str, form: dict[str, str] | None
) -> None:
    # Not a 307 with an empty body: its Location comes from the Host header, and a client
    # following it would post the password there.
    response = await client.request(method, path, data=form)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "location" not in response.headers


async def test_docs_page_uses_packaged_assets(client: httpx.AsyncClient) -> None:
    page = await client.get("/api/doc")
    assert page.status_code == 200
    assert "/api/doc/static/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    asset = await client.get("/api/doc/static/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000


@pytest.mark.parametrize(
    "range_header", ["bytes=0-9", "bytes=abc", "bytes=5-1", "items=0-1", "bytes=999999999-"]
)
async def test_docs_assets_are_sent_whole_whatever_the_range(
    client: httpx.AsyncClient, range_header: str
) -> None:
    # Starlette would answer 206, or a plain-text 400 / 416 outside the one error shape.
    whole = (STATIC_DIR / "swagger-ui.css").read_bytes()

    asset = await client.get("/api/doc/static/swagger-ui.css", headers={"range": range_header})

    assert asset.status_code == 200 and asset.content == whole
    assert "content-range" not in asset.headers and "accept-ranges" not in asset.headers
