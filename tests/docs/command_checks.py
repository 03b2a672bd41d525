"""Whether a command the docs show is one the repository really runs.

`problem(command)` names what is wrong with a shown command, or returns None. Each check
reads the definition the real tool would use: the `python -m lambda_app` and
`python -m benchmarks` argparse parsers, alembic's own `CommandLine` parser, the Makefile,
the paths and methods the app serves, the context keys the CDK app reads, the settings
classes and the environment variables the code reads. Nothing here runs a shown command,
deploys or opens a network connection.

Placeholders in a shown command are read as a reader would: `<name>` and `$VAR` stand for
a value (checked as "1", which a string or a number option takes), `...` for more words,
and a `[optional group]` or `[a|b|c]` is checked left out and put in (each alternative).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import io
import re
import shlex
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
HELP_TIMEOUT_SECONDS = 120

SHELL_OPERATORS = {"&&", "||", ";", "|", "&", "(", ")", "$(", "`"}
ENV_ASSIGNMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)=")
PYTHONS = re.compile(r"^(?:\S*/)?python(?:3(?:\.\d+)?)?$")
PLACEHOLDER = re.compile(r"<[^<>\s]+>|\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*")
PLACEHOLDER_VALUE = "1"
ALTERNATIVE = "\0"
REVISION_ID = re.compile(r"^\d{4}$")  # migrations/versions/0004_....py
VARIABLE_REFERENCE = re.compile(r"\$\{?(?P<name>[A-Za-z_][A-Za-z0-9_]*)")

# The commands of the CDK CLI that package-lock.json pins, aliases included, as `cdk --help`
# lists them (test_command_checks.py compares): a misspelt command fails here, not in node.
CDK_COMMANDS = frozenset(
    {
        "list", "ls", "synth", "synthesize", "bootstrap", "gc", "flags", "deploy", "validate",
        "diagnose", "rollback", "publish-assets", "import", "watch", "destroy", "diff",
        "drift", "metadata", "acknowledge", "ack", "notices", "init", "migrate", "context",
        "docs", "doc", "doctor", "explore", "lsp", "orphan", "refactor", "cli-telemetry",
    }
)  # fmt: skip
CDK_STACK_COMMANDS = frozenset({"deploy", "diff", "destroy", "synth", "synthesize", "watch"})
# Options that take the next word (`--profile dev`): it is not a stack name.
CDK_VALUE_OPTIONS = frozenset(
    {
        "-a", "--app", "-o", "--output", "--profile", "-r", "--role-arn", "--require-approval",
        "--parameters", "-O", "--outputs-file", "-m", "--method", "--concurrency", "-t",
        "--tags", "--toolkit-stack-name", "--qualifier", "--trust",
        "--cloudformation-execution-policies", "--change-set-name", "-e", "--exclusively",
    }
)  # fmt: skip
CDK_BOOTSTRAP_ENVIRONMENT = re.compile(r"^aws://[^/\s]+/[^/\s]+$")
CI_STACK = "ci"  # infra_cdk/app.py: stack_name("ci"), with -c github_repository

# curl's options that take a value (`-X POST`), and those that send a body (POST unless -G).
CURL_VALUE_OPTIONS = frozenset(
    {
        "-X", "--request", "-H", "--header", "-d", "--data", "--data-raw", "--data-binary",
        "--data-urlencode", "--json", "-F", "--form", "-o", "--output", "-u", "--user",
        "-w", "--write-out", "-A", "--user-agent", "-b", "--cookie", "-c", "--cookie-jar",
        "-e", "--referer", "-m", "--max-time", "--connect-timeout", "-T", "--upload-file",
    }
)  # fmt: skip
CURL_BODY_OPTIONS = frozenset(
    {"-d", "--data", "--data-raw", "--data-binary", "--data-urlencode", "--json", "-F", "--form"}
)
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1"})

# Variables read by the tools around the app rather than by its code (the AWS CLI and SDK,
# the CDK CLI): a page may show them set.
TOOL_ENVIRONMENT = frozenset(
    {"AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION"}
)
ENVIRONMENT_READ = re.compile(
    r"""(?:os\.environ(?:\.get|\.setdefault|\.pop)?|os\.getenv)\s*[(\[]\s*["'](?P<name>[A-Z][A-Z0-9_]*)["']"""
)
CONTEXT_READ = re.compile(
    r"""(?:\btry_get_context|\bcontext)\(\s*["'](?P<key>[a-z][a-z0-9_]*)["']"""
)
STAGE_ENTRY = re.compile(r"""^\s+["'](?P<stage>[a-z][a-z0-9-]*)["']:\s*StageConfig\(""", re.M)


# --- how a shown line splits into commands --------------------------------------------------


def logical_lines(script: str) -> list[str]:
    """Shell lines with backslash continuations joined."""
    return script.replace("\\\n", " ").splitlines()


def _words(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()`")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote in a shown command: fall back to plain words
        return line.split("#", 1)[0].split()


def simple_commands(line: str) -> list[list[str]]:
    """Each simple command of a shell line, as words, with its leading `VAR=value`s. A line
    of assignments only (`TOKEN=$(...)`) sets shell variables: no command."""
    # A synopsis's alternatives ([upgrade|downgrade]) are one word, not a pipe.
    line = re.sub(r"\[[^\]\s]*\]", lambda group: group[0].replace("|", ALTERNATIVE), line)
    commands: list[list[str]] = [[]]
    for word in (word.replace(ALTERNATIVE, "|") for word in _words(line)):
        if word in SHELL_OPERATORS or set(word) <= set(";&|()`"):
            commands.append([])
        elif word.startswith("$("):
            commands.append([word[2:]] if word[2:] else [])
        else:
            commands[-1].append(word)
    return [words for words in commands if any(not ENV_ASSIGNMENT.match(w) for w in words)]


def split_environment(words: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the leading `VAR=value` words, the command)."""
    index = 0
    while index < len(words) and ENV_ASSIGNMENT.match(words[index]):
        index += 1
    return tuple(words[:index]), tuple(words[index:])


# --- placeholders ------------------------------------------------------------------------------


def variants(arguments: Sequence[str]) -> list[list[str]]:
    """The concrete argument lists a shown synopsis stands for (see the module docstring)."""
    parts: list[list[list[str]]] = []  # each part: its alternatives; [] among them: left out
    group: list[str] | None = None
    for word in arguments:
        if word == "...":
            continue
        if group is None and word.startswith("["):
            group, word = [], word[1:]
        if group is None:
            parts.append([[word]])
            continue
        closed = word.endswith("]")
        group.append(word[:-1] if closed else word)
        if closed:
            if len(group) == 1 and "|" in group[0]:
                parts.append([[], *([choice] for choice in group[0].split("|"))])
            else:
                parts.append([[], group])
            group = None
    if group is not None:  # "[" never closed: read the words as shown
        parts += [[[word]] for word in group]
    widest = max((len(alternatives) for alternatives in parts), default=1)
    # First every group left out, then every group put in, each alternative in turn.
    choices = [
        [min(index, len(alternatives) - 1) for alternatives in parts] for index in range(widest)
    ]
    return [
        [
            PLACEHOLDER.sub(PLACEHOLDER_VALUE, word)
            for alternatives, choice in zip(parts, chosen, strict=True)
            for word in alternatives[choice]
        ]
        for chosen in choices
    ]


_option_tuples = argparse.ArgumentParser._get_option_tuples


def _prefixes_of_short_options_only(
    parser: argparse.ArgumentParser, option_string: str
) -> list[Any]:
    """argparse takes `--smok` for `--smoke`: a page writes a long option in full, or a new
    option sharing the prefix breaks the shown command. (`-qv`, `-p5` still parse.)"""
    return [] if option_string.startswith("--") else _option_tuples(parser, option_string)


def _parse_error(parse: Callable[[list[str]], object], arguments: list[str]) -> str | None:
    """argparse's complaint about `arguments`, or None if it takes them (`--help` too)."""
    errors = io.StringIO()
    no_abbreviations = mock.patch.object(
        argparse.ArgumentParser, "_get_option_tuples", _prefixes_of_short_options_only
    )
    try:
        with (
            no_abbreviations,
            contextlib.redirect_stderr(errors),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            parse(arguments)
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            return errors.getvalue().strip().splitlines()[-1]
    return None


def _first_parse_error(
    parse: Callable[[list[str]], object], arguments: Sequence[str]
) -> str | None:
    for concrete in variants(arguments):
        if (error := _parse_error(parse, concrete)) is not None:
            return f"{shlex.join(concrete)}: {error}"
    return None


# --- python -m lambda_app, python -m benchmarks, python -c ------------------------------------


@functools.cache
def lambda_app_parser() -> argparse.ArgumentParser:
    from lambda_app.devtools.cli import build_parser

    return build_parser()


@functools.cache
def revision_ids() -> frozenset[str]:
    versions = ROOT / "migrations" / "versions"
    return frozenset(path.name[:4] for path in versions.glob("[0-9][0-9][0-9][0-9]_*.py"))


def _unknown_revisions(*values: str | None) -> list[str]:
    """The revision ids (0004) named in `values` (0003:0004, base, head) that do not exist."""
    return [
        part
        for value in values
        for part in re.split(r"[:@]", value or "")
        if REVISION_ID.match(part) and part not in revision_ids()
    ]


def _parse_naming_revisions(parser: argparse.ArgumentParser) -> Callable[[list[str]], None]:
    """`parser`'s parse, refusing a `revision` argument that names no migration."""

    def parse(words: list[str]) -> None:
        if unknown := _unknown_revisions(getattr(parser.parse_args(words), "revision", None)):
            parser.error(f"no revision {', '.join(unknown)} in migrations/versions")

    return parse


def check_lambda_app(arguments: Sequence[str]) -> str | None:
    if not arguments:
        return None  # `python -m lambda_app` names the CLI in prose
    return _first_parse_error(_parse_naming_revisions(lambda_app_parser()), arguments)


def check_migration_lint(arguments: Sequence[str]) -> str | None:
    revisions = [word for word in arguments if not word.startswith("-")]
    if unknown := _unknown_revisions(*revisions):
        return f"no revision {', '.join(unknown)} in migrations/versions"
    return None


def check_benchmarks(arguments: Sequence[str]) -> str | None:
    from benchmarks.runner import parse_args

    return _first_parse_error(parse_args, arguments)


PYTHON_MODULE_CHECKS: dict[str, Callable[[Sequence[str]], str | None]] = {
    "lambda_app": check_lambda_app,
    "benchmarks": check_benchmarks,
    "lambda_app.devtools.migration_lint": check_migration_lint,
}


def check_python(arguments: Sequence[str], *, venv: bool = True) -> str | None:
    """`venv`: the project's own interpreter, which has every module a page may run with it
    (another python, Lambda's python3.13 say, has modules this machine may not)."""
    while arguments[:1] and arguments[0] not in ("-c", "-m") and arguments[0].startswith("-"):
        # the interpreter's own flags (-S, -X importtime)
        arguments = arguments[2:] if arguments[0] in ("-X", "-W") else arguments[1:]
    if not arguments:
        return None  # the interpreter itself, named with its flags
    if arguments[:1] == ("-c",) and len(arguments) > 1:
        try:
            compile(arguments[1], "<shown>", "exec")
        except SyntaxError as error:
            return f"the -c program does not compile: {error}"
        return None
    if arguments[:1] == ("-m",) and len(arguments) > 1:
        module = arguments[1]
        if venv and importlib.util.find_spec(module) is None:
            return f"there is no module {module!r}"
        check = PYTHON_MODULE_CHECKS.get(module)
        return check(arguments[2:]) if check else None
    return f"no check for python {shlex.join(arguments)}: add one to {Path(__file__).name}"


# --- alembic, ruff, pytest -------------------------------------------------------------------


def check_alembic(arguments: Sequence[str]) -> str | None:
    from alembic.config import CommandLine

    parser = CommandLine(prog="alembic").parser
    parse_naming_revisions = _parse_naming_revisions(parser)

    def parse(words: list[str]) -> None:
        if not hasattr(parser.parse_args(words), "cmd"):
            parser.error("no alembic command given")
        parse_naming_revisions(words)

    return _first_parse_error(parse, arguments)


@functools.cache
def _tool_help(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / arguments[0]), *arguments[1:], "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HELP_TIMEOUT_SECONDS,
        check=False,
    )


def check_ruff(arguments: Sequence[str]) -> str | None:
    if not arguments or arguments[0].startswith("-"):
        return None
    if _tool_help("ruff", arguments[0]).returncode != 0:
        return f"ruff has no command {arguments[0]!r}"
    return None


def check_pytest(arguments: Sequence[str]) -> str | None:
    known = set(re.findall(r"(?<![\w-])--?[a-zA-Z][a-zA-Z0-9-]*", _tool_help("pytest").stdout))
    options = {word.split("=", 1)[0] for word in arguments if word.startswith("-")}
    if unknown := options - known:
        return f"pytest has no option {', '.join(sorted(unknown))}"
    return None


VENV_TOOL_CHECKS: dict[str, Callable[[Sequence[str]], str | None]] = {
    "alembic": check_alembic,
    "ruff": check_ruff,
    "pytest": check_pytest,
}


# --- make ------------------------------------------------------------------------------------


def _makefile() -> str:
    return (ROOT / "Makefile").read_text(encoding="utf-8")


@functools.cache
def makefile_targets() -> frozenset[str]:
    makefile = _makefile()
    targets = set()
    for match in re.finditer(r"^(?P<names>[A-Za-z0-9_./%-][^:=\n]*?)\s*::?(?!=)", makefile, re.M):
        targets.update(name for name in match["names"].split() if not name.startswith("$"))
    for match in re.finditer(r"^\.PHONY\s*:(?P<names>.*)$", makefile, re.MULTILINE):
        targets.update(match["names"].split())
    return frozenset(targets - {".PHONY", ".DEFAULT_GOAL"})


@functools.cache
def makefile_variables() -> frozenset[str]:
    """Variables the Makefile sets (`STAGE ?= dev`): the ones `make NAME=value` overrides."""
    assigned = re.findall(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*[:?+]?=", _makefile(), re.M)
    return frozenset(assigned)


def check_make(arguments: Sequence[str]) -> str | None:
    overrides = [word.split("=", 1)[0] for word in arguments if ENV_ASSIGNMENT.match(word)]
    if unknown := [name for name in overrides if name not in makefile_variables()]:
        return f"the Makefile has no variable {', '.join(unknown)}"
    stages = [word.split("=", 1)[1] for word in arguments if word.startswith("STAGE=")]
    if wrong := [stage for stage in stages if stage not in cdk_stages()]:  # -c stage=$(STAGE)
        return f"STAGE={wrong[0]}: no such stage (stages: {', '.join(sorted(cdk_stages()))})"
    targets = [word for word in arguments if not word.startswith("-") and "=" not in word]
    if missing := [target for target in targets if target not in makefile_targets()]:
        return (
            f"no Makefile target {', '.join(missing)} "
            f"(targets: {', '.join(sorted(makefile_targets()))})"
        )
    return None


def makefile_lambda_app_commands() -> list[tuple[str, ...]]:
    """The `$(PY) -m lambda_app ...` commands in the Makefile's recipes, as words."""
    return [
        tuple(words)
        for line in logical_lines(_makefile())
        if line.startswith("\t")
        for words in simple_commands(re.sub(r"\$\((\w+)\)", r"\1", line.strip()))
        if words[1:3] == ["-m", "lambda_app"]
    ]


# --- npx cdk ---------------------------------------------------------------------------------


@functools.cache
def cdk_context_keys() -> frozenset[str]:
    """The context keys the CDK app reads (`context("name")`, `try_get_context("name")`),
    and the ones cdk.json sets (the CDK's own feature flags among them)."""
    import json

    keys = {
        match["key"]
        for path in sorted((ROOT / "infra_cdk").rglob("*.py"))
        for match in CONTEXT_READ.finditer(path.read_text(encoding="utf-8"))
    }
    keys |= set(json.loads((ROOT / "cdk.json").read_text(encoding="utf-8")).get("context", {}))
    return frozenset(keys)


@functools.cache
def cdk_stages() -> frozenset[str]:
    """The stages infra_cdk/config.py's STAGES defines, read as text (no jsii start)."""
    return frozenset(STAGE_ENTRY.findall((ROOT / "infra_cdk" / "config.py").read_text("utf-8")))


def _cdk_context(arguments: Sequence[str]) -> Iterator[str]:
    for index, word in enumerate(arguments):
        if word in ("-c", "--context") and index + 1 < len(arguments):
            yield arguments[index + 1]
        elif word.startswith("--context="):
            yield word.split("=", 1)[1]


@functools.cache
def cdk_help(*arguments: str) -> str:
    """`cdk ... --help` of the CLI package-lock.json pins (node_modules: `make lint`/`test`)."""
    cdk = ROOT / "node_modules" / ".bin" / "cdk"
    assert cdk.exists(), "the CDK CLI is not installed: `make node_modules/.installed`"
    return subprocess.run(
        [str(cdk), *arguments, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HELP_TIMEOUT_SECONDS,
        check=True,
    ).stdout


def cdk_options(command: str) -> frozenset[str]:
    """The options `cdk <command>` takes (its own and the global ones), --no-<flag> too."""
    options = set(re.findall(r"(?<![\w-])--?[a-zA-Z][a-zA-Z0-9-]*", cdk_help(command)))
    return frozenset(options | {f"--no-{option[2:]}" for option in options})


def check_cdk(arguments: Sequence[str]) -> str | None:
    arguments = [word for word in arguments if word != "..."]
    if not arguments:
        return None  # `npx cdk ...`: any command
    command, *rest = arguments
    if command not in CDK_COMMANDS:
        return f"the CDK CLI has no command {command!r}"
    options = {word.split("=", 1)[0] for word in rest if word.startswith("-")}
    if unknown := options - cdk_options(command):
        return f"cdk {command} has no option {', '.join(sorted(unknown))}"
    for pair in _cdk_context(rest):
        key, equals, value = pair.partition("=")
        if not equals:
            return f"-c {pair}: a context value is key=value"
        if key not in cdk_context_keys():
            return (
                f"-c {pair}: the CDK app reads no context key {key!r} "
                f"(it reads: {', '.join(sorted(k for k in cdk_context_keys() if '@' not in k))})"
            )
        if key == "stage" and value not in cdk_stages():
            return f"-c {pair}: no stage {value!r} (stages: {', '.join(sorted(cdk_stages()))})"
    takes_value = CDK_VALUE_OPTIONS | {"-c", "--context"}
    positional = [
        word
        for previous, word in zip(["", *rest], rest, strict=False)
        if not word.startswith("-") and previous not in takes_value
    ]
    if command == "bootstrap":
        wrong = [word for word in positional if not CDK_BOOTSTRAP_ENVIRONMENT.match(word)]
        return f"cdk bootstrap takes aws://ACCOUNT/REGION, not {wrong}" if wrong else None
    if command in CDK_STACK_COMMANDS:
        from lambda_app.workload import STACK_PREFIX  # infra_cdk/app.py's stack_name()

        stacks = {f"{STACK_PREFIX}-{stage}" for stage in cdk_stages() | {CI_STACK}}
        if wrong := [word for word in positional if word not in stacks]:
            return f"no stack {', '.join(wrong)} (stacks: {', '.join(sorted(stacks))})"
    return None


# --- curl ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurlRequest:
    method: str
    url: str


def curl_request(arguments: Sequence[str]) -> CurlRequest | None:
    """The method and URL a curl command sends, as curl itself reads its options."""
    method, url, body, get = None, None, False, False
    words = iter(arguments)
    for word in words:
        if word.startswith("--"):
            name, equals, value = word.partition("=")
            if name in CURL_VALUE_OPTIONS and not equals:
                value = next(words, "")
        elif word.startswith("-") and len(word) > 1:
            name, value = word, ""
            for position, letter in enumerate(word[1:], start=1):
                if f"-{letter}" in CURL_VALUE_OPTIONS:
                    name, value = f"-{letter}", word[position + 1 :] or next(words, "")
                    break
                if letter == "G":
                    get = True
                if letter == "I":
                    method = method or "HEAD"
        else:
            url = url or word
            continue
        if name in ("-X", "--request"):
            method = value.upper()
        elif name == "--get":
            get = True
        elif name == "--head":
            method = method or "HEAD"
        body = body or name in CURL_BODY_OPTIONS
    if url is None:
        return None
    return CurlRequest(method or ("POST" if body and not get else "GET"), url)


@functools.cache
def served_routes() -> dict[str, frozenset[str]]:
    """Each path template the app serves, with its methods: the OpenAPI schema's operations,
    and the few routes kept out of the schema (the schema itself, the docs page)."""
    from fastapi.routing import iter_route_contexts

    from lambda_app.main import create_app
    from tests.fixtures.settings import api_settings

    app = create_app(api_settings())
    routes: dict[str, set[str]] = {}
    for path, operations in app.openapi()["paths"].items():
        routes.setdefault(path, set()).update(method.upper() for method in operations)
    for route in iter_route_contexts(app.routes):
        if route.path_format and route.methods:
            routes.setdefault(route.path_format, set()).update(route.methods)
    for methods in routes.values():
        if "GET" in methods:
            methods.add("HEAD")  # served as the GET (core.middleware)
    return {path: frozenset(methods) for path, methods in routes.items()}


def _matches(template: str, path: str) -> bool:
    expected, shown = template.strip("/").split("/"), path.strip("/").split("/")
    return len(expected) == len(shown) and all(
        part == word or (part.startswith("{") and bool(word))
        for part, word in zip(expected, shown, strict=True)
    )


@functools.cache
def local_port() -> int:
    """The port `make run` serves on: `serve`'s default in the CLI's parser."""
    return int(lambda_app_parser().parse_args(["serve"]).port)


def check_curl(arguments: Sequence[str]) -> str | None:
    request = curl_request(arguments)
    if request is None:
        return "curl without a URL"
    url = PLACEHOLDER.sub(PLACEHOLDER_VALUE, request.url)
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.hostname in LOCAL_HOSTS and parts.port != local_port():
        return f"{request.url}: `make run` serves on port {local_port()}, not {parts.port}"
    path = parts.path
    templates = [template for template in served_routes() if _matches(template, path)]
    if not templates:
        return (
            f"{request.url}: the app serves no path {path} (it serves: {sorted(served_routes())})"
        )
    methods = set().union(*(served_routes()[template] for template in templates))
    if request.method not in methods:
        return f"{request.method} {path}: the path serves {', '.join(sorted(methods))}"
    return None


# --- export, unset, VAR=value ------------------------------------------------------------------


@functools.cache
def known_environment() -> frozenset[str]:
    """Every variable the app, its tools or the tests read: the settings classes' fields
    (pydantic-settings, no prefix, case-insensitive), each `os.environ`/`os.getenv` of a
    literal name in the repository's Python, and the tools' own (TOOL_ENVIRONMENT)."""
    from pydantic_settings import BaseSettings

    import lambda_app.core.settings
    import lambda_app.migrate.settings  # noqa: F401  (defines MigrationSettings)

    names = set(TOOL_ENVIRONMENT)
    pending: list[type[BaseSettings]] = [BaseSettings]
    while pending:
        settings = pending.pop()
        pending += settings.__subclasses__()
        if settings.__module__.startswith("lambda_app."):
            assert not settings.model_config.get("env_prefix"), settings  # read as no prefix
            names |= {name.upper() for name in settings.model_fields}
    for folder in ("lambda_app", "infra_cdk", "migrations", "benchmarks", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(ENVIRONMENT_READ.findall(path.read_text(encoding="utf-8")))
    return frozenset(names)


def _unknown_variables(names: Sequence[str], *, also: frozenset[str] = frozenset()) -> str | None:
    if unknown := [name for name in names if name not in known_environment() | also]:
        return f"nothing here reads {', '.join(unknown)}"
    return None


def check_export(arguments: Sequence[str]) -> str | None:
    names = [word.split("=", 1)[0] for word in arguments if not word.startswith("-")]
    referenced = [
        match["name"]
        for word in arguments
        for match in VARIABLE_REFERENCE.finditer(word.partition("=")[2])
    ]
    return _unknown_variables([*names, *referenced])


# --- all of them -----------------------------------------------------------------------------


def _program(words: Sequence[str]) -> Callable[[Sequence[str]], str | None] | None:
    program = words[0]
    if PYTHONS.match(program):
        return functools.partial(check_python, venv=program == ".venv/bin/python")
    tool = program.removeprefix(".venv/bin/")
    if program.startswith(".venv/bin/") or tool == "alembic":
        return VENV_TOOL_CHECKS.get(tool)
    simple: dict[str, Callable[[Sequence[str]], str | None]] = {
        "make": check_make,
        "curl": check_curl,
        "cdk": check_cdk,
        "export": check_export,
        "unset": check_export,
    }
    if program == "npx" and words[1:2] == ("cdk",):
        return lambda arguments: check_cdk(arguments[1:])
    return simple.get(program)


# `aws ...` is checked against botocore's service models in test_docs_text.py.
CHECKED_ELSEWHERE = frozenset({"aws"})


def is_checked(words: Sequence[str]) -> bool:
    _, command = split_environment(words)
    return bool(command) and (command[0] in CHECKED_ELSEWHERE or _program(command) is not None)


def problem(words: Sequence[str]) -> str | None:
    """What is wrong with a shown command (its words as the shell splits them), or None."""
    environment, command = split_environment(words)
    if not command:
        return None
    if command[0].startswith(".venv/bin/") and not (ROOT / command[0]).exists():
        return f"{command[0]} is not in the virtual environment"
    overrides = makefile_variables() if command[0] == "make" else frozenset()
    names = [assignment.split("=", 1)[0] for assignment in environment]
    if wrong := _unknown_variables(names, also=overrides):
        return wrong
    if command[0] in CHECKED_ELSEWHERE:
        return None
    check = _program(command)
    if check is None:
        return f"no check for {command[0]}: add one to {Path(__file__).name}"
    return check(tuple(command[1:]))
