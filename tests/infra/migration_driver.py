"""Run inside a fresh `python -I -S` with only the bundle importable (stdlib only here).

Usage: python -I -S migration_driver.py <bundle dir>
Invokes lambda_app.handlers.migrate.handler with the trigger's event (empty: upgrade
to head), the way the Lambda runtime would, and prints one JSON line: its result and
where the modules were imported from, and which of the modules it must not ship could
not be imported. The database comes from DATABASE_URL (the first superuser, if any, from
FIRST_SUPERUSER_*).
"""

import json
import sys
import types
import uuid

bundle = sys.argv[1]
sys.path.insert(0, bundle)

from lambda_app.handlers import migrate  # noqa: E402  (after the bundle is on sys.path)

context = types.SimpleNamespace(
    aws_request_id=str(uuid.uuid4()),
    function_name="lambda-app-migrations",
    get_remaining_time_in_millis=lambda: 840_000,
)
results = {"result": migrate.handler({}, context)}
results["imported_from"] = {
    name: getattr(sys.modules.get(name), "__file__", None)
    for name in (
        "lambda_app",
        "alembic",
        "mako",
        "sqlalchemy",
        "asyncpg",
        "lambda_app.migrate.superuser",  # imported by the superuser step only
        "lambda_app.users.service",
        "argon2",
    )
}
results["loaded_from_site_packages"] = sorted(
    name
    for name, module in list(sys.modules.items())
    if "site-packages" in (getattr(module, "__file__", None) or "")
)
results["sys_flags"] = {"isolated": sys.flags.isolated, "no_site": sys.flags.no_site}
# The migration flavour leaves the API's app and the dev tools out: really absent.
missing = {}
for name in ("lambda_app.main", "lambda_app.auth", "lambda_app.devtools", "lambda_app.local"):
    try:
        __import__(name)
    except ImportError as exc:
        missing[name] = type(exc).__name__
results["missing"] = missing
print(json.dumps(results))
