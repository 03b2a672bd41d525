"""`python -m lambda_app`: the local command line.

serve             start the embedded PostgreSQL (unless DATABASE_URL is set), migrate,
                  make sure a superuser exists, serve the API on http://127.0.0.1:8000
serve --lambda    the same, but every request goes through the real Lambda handler
migrate           run Alembic (upgrade/downgrade/current/history/check)
create-superuser  create a superuser interactively or from flags
db                start/stop/status/url of the embedded PostgreSQL
release           invoke the deployed migration Lambda (see `release --help`)
release rollback  point the deployed API's live alias back at an earlier version
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import signal
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from lambda_app.core.settings import get_settings
from lambda_app.devtools.release import add_release_command
from lambda_app.devtools.rollback import add_rollback_command
from lambda_app.migrate.actions import ACTIONS, DEFAULT_ACTION, MigrationRequest
from lambda_app.migrate.settings import get_migration_settings
from lambda_app.migrate.superuser import CONFIGURED_SUPERUSER, SuperuserPolicy, SuperuserResult

if TYPE_CHECKING:
    from lambda_app.migrate.result import MigrationResult

# `serve`: `admin` in local development when none is configured; a generated password is
# printed once.
LOCAL_SUPERUSER = SuperuserPolicy(local_default=True, generate_password=True)
# `create-superuser`: the one just prompted for, beside any others; a generated password is
# printed once.
PROMPTED_SUPERUSER = SuperuserPolicy(generate_password=True, first_only=False)


@contextlib.contextmanager
def _use_database(url: str) -> Iterator[None]:
    """Point the app's settings (and so its engine) at `url` for this process."""
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    get_migration_settings.cache_clear()
    yield


def _run_migration(request: MigrationRequest, *, superuser: SuperuserPolicy) -> MigrationResult:
    """The migration function's own entry point, on the shipped scripts."""
    from lambda_app.migrate.runner import alembic_config, run_migration

    return asyncio.run(run_migration(request, config=alembic_config(), superuser=superuser))


def _report_superuser(result: SuperuserResult | None) -> None:
    if result is None:
        return
    if result.skipped:
        print(f"Superuser {result.username!r} not created: {result.skipped}.", file=sys.stderr)
    elif result.created:
        print(f"Created superuser {result.username!r}.")
        if result.generated_password:
            # Printed once, now: it is stored only as a hash.
            print(f"  generated password: {result.generated_password}")
            print("  (set FIRST_SUPERUSER_PASSWORD to choose your own)")


def _cmd_serve(args: argparse.Namespace) -> int:
    from lambda_app.devtools.database import development_database, prepare_api_role

    with development_database() as url:
        # Migrations and the first superuser as the owner, as the migration function
        # does; the API as its own role, as on AWS.
        with _use_database(url):
            migrated = _run_migration(MigrationRequest(), superuser=LOCAL_SUPERUSER)
        _report_superuser(migrated.superuser)
        with _use_database(prepare_api_role(url)):
            print(
                f"API on http://{args.host}:{args.port}/api  docs: http://{args.host}:{args.port}/api/doc"
            )
            if args.use_lambda:
                from lambda_app.devtools.gateway import serve_gateway

                serve_gateway(
                    host=args.host, port=args.port, stage=args.stage, base_path=args.base_path
                )
            else:
                import uvicorn

                # uvicorn shuts down on SIGINT/SIGTERM, then re-raises the signal with the
                # handler it found. Make that a KeyboardInterrupt for both, so `kill` also
                # leaves through `development_database()` and stops the embedded server.
                for stop_signal in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(stop_signal, _interrupt)
                with contextlib.suppress(KeyboardInterrupt):
                    uvicorn.run(
                        "lambda_app.main:create_app",
                        factory=True,
                        host=args.host,
                        port=args.port,
                        log_level="warning",
                    )
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _cmd_migrate(args: argparse.Namespace) -> int:
    from lambda_app.devtools.database import development_database
    from lambda_app.migrate.errors import safe_error_message

    # Refused before any database starts.
    request = MigrationRequest(action=args.action, revision=args.revision)
    with development_database() as url, _use_database(url):
        try:
            # What the migration function does, superuser step included.
            result = _run_migration(request, superuser=CONFIGURED_SUPERUSER)
        except Exception as exc:
            # The message is log-safe (no SQL parameters); LAMBDA_APP_DEBUG=1 shows the cause.
            if os.environ.get("LAMBDA_APP_DEBUG"):
                raise
            message = safe_error_message(exc)
            print(f"migration failed ({request.action}): {message}", file=sys.stderr)
            return 1
    print(json.dumps(result.as_dict(), indent=2))
    return 0 if result.ok else 1


def _cmd_create_superuser(args: argparse.Namespace) -> int:
    from lambda_app.devtools.database import development_database

    username = args.username or input("Username: ")
    email = args.email or input("Email: ")
    password = args.password or getpass.getpass("Password (empty: generate one): ") or None
    os.environ.update({"FIRST_SUPERUSER_USERNAME": username, "FIRST_SUPERUSER_EMAIL": email})
    if password:
        os.environ["FIRST_SUPERUSER_PASSWORD"] = password
    with development_database() as url, _use_database(url):
        migrated = _run_migration(MigrationRequest(), superuser=PROMPTED_SUPERUSER)
    _report_superuser(migrated.superuser)
    return 0


def _cmd_db(args: argparse.Namespace) -> int:
    from lambda_app.devtools.embedded_postgres import EmbeddedPostgres

    server = EmbeddedPostgres()
    if args.action == "start":
        # Up until `db stop`: the sessions of `serve`, `migrate` and the tests then leave
        # it running when they end.
        server.start_kept()
        print(server.url())
    elif args.action == "stop":
        server.stop()
    elif args.action == "status":
        print("running" if server.is_running() else "stopped")
    else:
        print(server.url())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lambda_app",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API locally")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--lambda",
        dest="use_lambda",
        action="store_true",
        help="serve through the real Lambda handler (API Gateway 2.0 events)",
    )
    serve.add_argument(
        "--stage",
        default="$default",
        help="with --lambda: an API Gateway stage name, served under /<stage>",
    )
    serve.add_argument(
        "--base-path",
        default=None,
        help=(
            "with --lambda: a custom domain's API mapping key, served under /<base-path> "
            "(the stage is then not in the URL), as API_BASE_PATH tells the function"
        ),
    )
    serve.set_defaults(func=_cmd_serve)

    migrate = commands.add_parser("migrate", help="run database migrations")
    migrate.add_argument(
        "action",
        nargs="?",
        default=DEFAULT_ACTION,
        choices=ACTIONS,
    )
    migrate.add_argument("revision", nargs="?", default=None)
    migrate.set_defaults(func=_cmd_migrate)

    superuser = commands.add_parser("create-superuser", help="create a superuser")
    superuser.add_argument("--username")
    superuser.add_argument("--email")
    superuser.add_argument("--password", help="omit to be prompted (safer: not in shell history)")
    superuser.set_defaults(func=_cmd_create_superuser)

    db = commands.add_parser("db", help="control the embedded PostgreSQL")
    db.add_argument("action", choices=["start", "stop", "status", "url"])
    db.set_defaults(func=_cmd_db)

    add_rollback_command(add_release_command(commands))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a clean message instead of a traceback for operator errors
        if os.environ.get("LAMBDA_APP_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
