"""Run inside a fresh `python -I -S` with only the bundle importable (stdlib only here).

Usage: python -I -S bundle_driver.py <bundle dir> <event template> <username>
Sends API Gateway HTTP API (2.0) events to lambda_app.handlers.api.handler, the way
the Lambda runtime would, and prints one JSON line: the responses, where the modules
were imported from, and which of the modules it must not ship could not be imported.
"""

import base64
import copy
import json
import sys
import types
import urllib.parse
import uuid

bundle, template_path, username = sys.argv[1:4]
sys.path.insert(0, bundle)

from lambda_app.handlers import api  # noqa: E402  (after the bundle is on sys.path)

with open(template_path) as handle:
    TEMPLATE = json.load(handle)


def context() -> types.SimpleNamespace:
    return types.SimpleNamespace(
        aws_request_id=str(uuid.uuid4()),
        function_name="lambda-app-api",
        function_version="1",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:lambda-app-api",
        memory_limit_in_mb=1024,
        log_group_name="/aws/lambda/lambda-app-api",
        log_stream_name="local",
        get_remaining_time_in_millis=lambda: 20_000,
    )


def request(method: str, path: str, *, body: str | None = None, headers: dict | None = None):
    event = copy.deepcopy(TEMPLATE)
    event["rawPath"] = path
    event["requestContext"]["http"].update(method=method, path=path)
    event["requestContext"]["requestId"] = str(uuid.uuid4())
    event["headers"].update(headers or {})
    if body is not None:
        event["body"] = body
        event["headers"]["content-length"] = str(len(body.encode()))
    response = api.handler(event, context())
    payload = response.get("body") or ""
    if response.get("isBase64Encoded"):
        payload = base64.b64decode(payload).decode()
    return response["statusCode"], json.loads(payload) if payload else None


results = {}
results["ready"] = request("GET", "/api/health/ready")
password = "bundle-test-password-1"
results["register"] = request(
    "POST",
    "/api/auth/register",
    body=json.dumps(
        {"username": username, "email": f"{username}@example.com", "password": password}
    ),
    headers={"content-type": "application/json"},
)
results["token"] = request(
    "POST",
    "/api/auth/token",
    body=urllib.parse.urlencode({"username": username, "password": password}),
    headers={"content-type": "application/x-www-form-urlencoded"},
)
results["invalid_register"] = request(
    "POST",
    "/api/auth/register",
    body=json.dumps({"username": username, "email": "not an address", "password": "x"}),
    headers={"content-type": "application/json"},
)
token = (results["token"][1] or {}).get("access_token", "")
results["me"] = request("GET", "/api/users/me", headers={"authorization": f"Bearer {token}"})
results["openapi"] = request("GET", "/api/openapi.json")
# The dependencies are compiled as `python -OO` compiles them; the app keeps its docstrings.
import sqlalchemy.orm  # noqa: E402
import starlette.convertors  # noqa: E402

from lambda_app.core import settings  # noqa: E402

try:
    starlette.convertors.StringConvertor().to_string("a/b")  # asserts "no path separators"
    dependency_asserts = False
except AssertionError:
    dependency_asserts = True
results["compiled"] = {
    "dependency_docstrings": sqlalchemy.orm.Session.__doc__ is not None,
    "dependency_asserts": dependency_asserts,
    "app_docstrings": settings.get_settings.__doc__ is not None,
}
results["imported_from"] = {
    name: getattr(sys.modules.get(name), "__file__", None)
    for name in ("lambda_app", "fastapi", "sqlalchemy", "asyncpg", "mangum", "pydantic_core")
}
results["loaded_from_site_packages"] = sorted(
    name
    for name, module in list(sys.modules.items())
    if "site-packages" in (getattr(module, "__file__", None) or "")
)
results["sys_flags"] = {"isolated": sys.flags.isolated, "no_site": sys.flags.no_site}
# The API flavour leaves the migration tools, the migration function's code, the dev
# tools (and pydantic's 1.x API) out: really absent.
missing = {}
for name in (
    "alembic",
    "mako",
    "sqlalchemy.dialects.sqlite",
    "pydantic.v1",
    "lambda_app.migrate",
    "lambda_app.handlers.migrate",
    "lambda_app.devtools",
    "lambda_app.local",
):
    try:
        __import__(name)
    except ImportError as exc:
        missing[name] = type(exc).__name__
results["missing"] = missing
print(json.dumps(results))
