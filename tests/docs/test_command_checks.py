"""The checks of shown commands (command_checks.py) reject broken commands.

test_docs_text.py runs every command the pages show through `command_checks.problem`; here
the same function meets commands that look right and a misspelt twin of each (the ones
a reviewer slipped into the README among them), so that a check passing the docs is seen
to be able to fail.
"""

from __future__ import annotations

import re

import pytest

from tests.docs import command_checks


def _problem(line: str) -> str | None:
    (words,) = command_checks.simple_commands(line)
    return command_checks.problem(words)


@pytest.mark.parametrize(
    "line",
    [
        ".venv/bin/python -m lambda_app db start",
        ".venv/bin/python -m lambda_app serve --lambda --port <port>",
        ".venv/bin/python -m lambda_app migrate [upgrade|downgrade|current|check] [revision]",
        ".venv/bin/python -m lambda_app release rollback --stack LambdaApp-prod [--to VERSION]",
        ".venv/bin/python -m lambda_app --help",
        ".venv/bin/alembic -x key=value upgrade head",
        ".venv/bin/python -m benchmarks --smoke",
        ".venv/bin/python -c 'import sys; print(sys.version)'",
        "make synth STAGE=dev",
        "STAGE=prod make synth",
        ".venv/bin/alembic upgrade <down>:<rev> --sql",
        "alembic revision --autogenerate --rev-id 0099 -m 'add notes'",
        ".venv/bin/alembic downgrade 0001",
        ".venv/bin/python -m lambda_app migrate downgrade 0001",
        ".venv/bin/python -m lambda_app.devtools.migration_lint 0004",
        ".venv/bin/ruff check --fix migrations/versions",
        ".venv/bin/pytest tests/reliability --durations=15 -q",
        "npx cdk deploy LambdaApp-ci -c github_repository=OWNER/NAME",
        "npx cdk diff --context=stage=prod",
        "npx cdk deploy --all --no-rollback -c stage=dev",
        "npx cdk deploy LambdaApp-dev --profile dev --require-approval never",
        "npx cdk bootstrap aws://ACCOUNT/REGION",
        "npx cdk ...",
        "curl -s localhost:8000/api/users/<id>",
        "curl -X DELETE http://127.0.0.1:8000/api/users/$USER_ID",
        "curl -sI localhost:8000/api/health",
        "curl -s localhost:8000/api/doc",
        "curl -s -X POST localhost:8000/api/auth/token -d 'username=a&password=b'",
        "curl -G localhost:8000/api/users -d limit=5",
        "export 'DATABASE_URL=postgresql+asyncpg://127.0.0.1:${EMBEDDED_PG_PORT:-54329}/x'",
        "export AWS_PROFILE=dev",
        "unset DATABASE_URL",
        "LOG_LEVEL=DEBUG make run",
    ],
)
def test_a_command_the_repository_runs_passes(line: str) -> None:
    assert _problem(line) is None


@pytest.mark.parametrize(
    ("line", "named"),
    [
        # python -m lambda_app: the CLI's own parser
        (".venv/bin/python -m lambda_app db strat", "invalid choice: 'strat'"),
        (".venv/bin/python -m lambda_app migrate upgrad", "invalid choice: 'upgrad'"),
        (".venv/bin/python -m lambda_app serv", "invalid choice: 'serv'"),
        (".venv/bin/python -m lambda_app serve --prot 8001", "--prot"),
        (".venv/bin/python -m lambda_app serve --port eighty", "eighty"),
        (".venv/bin/python -m lambda_app db start now", "now"),
        (
            ".venv/bin/python -m lambda_app release --stack LambdaApp-dev --action currnet",
            "currnet",
        ),
        (".venv/bin/python -m lambda_app release rollback --stack X [--too VERSION]", "--too"),
        (".venv/bin/python -m lambda_app migrate [upgrade|downgrad]", "downgrad"),
        (".venv/bin/python -m lambda_ap db start", "lambda_ap"),
        (".venv/bin/pyhton -m lambda_app db start", "not in the virtual environment"),
        (".venv/bin/python -m benchmarks --smok", "--smok"),
        (".venv/bin/python -m lambda_app migrate downgrade 0099", "no revision 0099"),
        (".venv/bin/python -m lambda_app release --stack X --revision 0099", "no revision 0099"),
        (".venv/bin/python -m lambda_app.devtools.migration_lint 0099", "no revision 0099"),
        (".venv/bin/python -c 'print('", "does not compile"),
        # make
        ("make synht", "synht"),
        ("make synth STAEG=dev", "STAEG"),
        ("make synth STAGE=staging", "STAGE=staging"),
        # alembic: its own CommandLine parser
        (".venv/bin/alembic chekc", "invalid choice: 'chekc'"),
        ("alembic upgrade head --sqll", "--sqll"),
        (".venv/bin/alembic upgrade 0003:0099 --sql", "no revision 0099"),
        (".venv/bin/alembic", "no alembic command"),
        # ruff, pytest
        (".venv/bin/ruff fromat migrations/versions", "fromat"),
        (".venv/bin/pytest tests --durration=15", "--durration"),
        # npx cdk: its commands, the app's context keys, stages and stacks
        ("npx cdk dif -c stage=dev", "no command 'dif'"),
        ("npx cdk deploy --al -c stage=dev", "no option --al"),
        ("npx cdk diff --requre-approval never", "--requre-approval"),
        ("npx cdk diff -c stgae=dev", "'stgae'"),
        ("npx cdk deploy --all -c stage=dev -c alarm_mail=ops@example.com", "'alarm_mail'"),
        ("cdk deploy --context=stgae=dev", "'stgae'"),
        ("npx cdk deploy -c stage=staging", "no stage 'staging'"),
        ("npx cdk deploy -c stage", "key=value"),
        ("npx cdk deploy lambda-app-dev -c stage=dev", "no stack lambda-app-dev"),
        ("npx cdk bootstrap ACCOUNT/REGION", "aws://ACCOUNT/REGION"),
        # curl: the app's paths and methods, on the port `make run` serves
        ("curl localhost:8080/api/auth/regster", "port 8000"),
        ("curl -X POST localhost:8000/api/auth/regster -d '{}'", "no path /api/auth/regster"),
        ("curl -s localhost:8000/auth/register -d '{}'", "no path /auth/register"),
        ("curl -s localhost:8000/api/auth/register", "GET /api/auth/register"),
        ("curl -s -X PUT localhost:8000/api/users/me", "PUT /api/users/me"),
        ("curl -s localhost:8000/api/users/<id>/devices", "no path"),
        ("curl -s -H 'accept: application/json'", "without a URL"),
        # export, unset, VAR=value: what the settings and the code read
        ("export DATABSE_URL=postgresql+asyncpg://127.0.0.1/x", "DATABSE_URL"),
        ("export 'DATABASE_URL=postgresql+asyncpg://127.0.0.1:${EMBEDED_PG_PORT}/x'", "EMBEDED"),
        ("unset DATABASE_UR", "DATABASE_UR"),
        ("LOG_LEVLE=DEBUG make run", "LOG_LEVLE"),
        # a program no check reads
        ("terraform apply", "no check for terraform"),
    ],
)
def test_a_broken_command_is_rejected_naming_what_is_wrong(line: str, named: str) -> None:
    problem = _problem(line)
    assert problem is not None, f"{line!r} passed"
    assert named in problem, problem


def test_the_make_wrappers_of_the_cli_are_found() -> None:
    wrapped = {" ".join(words[3:]) for words in command_checks.makefile_lambda_app_commands()}
    assert {"serve", "serve --lambda"} <= wrapped, wrapped


def test_the_port_checked_is_the_one_make_run_serves() -> None:
    assert command_checks.local_port() == 8000  # the Makefile's comment: http://127.0.0.1:8000


def test_the_cdk_commands_known_are_the_pinned_cli_s() -> None:
    listed = command_checks.cdk_help().split("Commands:", 1)[1].split("Options:", 1)[0]
    commands = set(re.findall(r"^  cdk ([a-z][a-z-]*)", listed, re.MULTILINE))
    commands |= {
        alias.strip()
        for aliases in re.findall(r"\[aliases: ([^\]]+)\]", listed)
        for alias in aliases.split(",")
    }
    assert commands == command_checks.CDK_COMMANDS
