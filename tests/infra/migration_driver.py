"""Run inside a fresh `python -I -S` with only the bundle importable (stdlib only here).

Usage: python -I -S migration_driver.py <bundle dir>
Invokes lambda_app.handlers.migrate.handler with the trigger's event (empty: upgrade
to head), the way the Lambda runtime would, and prints one JSON line: its result and
where the modules were imported from. The database comes from DATABASE_URL.
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
    for name in ("lambda_app", "alembic", "mako", "sqlalchemy", "asyncpg")
}
results["loaded_from_site_packages"] = sorted(
    name
    for name, module in list(sys.modules.items())
    if "site-packages" in (getattr(module, "__file__", None) or "")
)
results["sys_flags"] = {"isolated": sys.flags.isolated, "no_site": sys.flags.no_site}
print(json.dumps(results))
