"""The documentation stays true to the repository: links, names and the commands it shows.

Reads README.md, docs/*.md and benchmarks/README.md as text. Nothing here runs a command
from the docs: each is checked against what the real tool reads (command_checks.py: the
CLI's argparse parser, alembic's, the Makefile, the app's routes, the CDK app's context
keys, the settings), and `aws` commands against botocore's service models. No deploy, no
network.
"""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.docs import command_checks

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_MAX_WORDS = 2_000
PAGES = sorted([README, *(ROOT / "docs").glob("*.md"), ROOT / "benchmarks" / "README.md"])

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)$", re.MULTILINE)
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
# [text](target) and ![alt](target); the title, if any, follows the target after a space.
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?(?P<target>[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(
    r"^ {0,3}\[[^\]]+\]:\s*<?(?P<target>\S+?)>?(?:\s|$)", re.MULTILINE
)
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(?P<text>.+?)\s*#*\s*$", re.MULTILINE)
HTML_ANCHOR = re.compile(r"""<a\s+(?:name|id)=["'](?P<name>[^"']+)["']""")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")

# The stack is `LambdaApp-<stage>` (infra_cdk/app.py). Old names and kebab-case guesses at it
# would send `release --stack` and `cdk` commands at a stack that does not exist.
WRONG_STACK_NAME = re.compile(
    r"lambda[-_]app-(?:dev|prod|staging|test|<stage>|\{stage\}|\$\{?stage)"
)
STACK_ARGUMENT = re.compile(r"--stack[= ]+(?P<name>\S+)")
STACK_NAME = re.compile(r"^LambdaApp-[a-z][a-z0-9-]*$")
# Run history belongs in benchmarks/, not on the pages a user reads to build on the project.
RUN_HISTORY = re.compile(
    r"\b20\d\d-\d\d-\d\d\b"  # a run's date
    r"|tried,? (?:and )?(?:measured,? and )?not adopted|earlier runs|runs that night",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Block:
    page: Path
    info: str  # the fence's info string: "bash", "mermaid", "python", ...
    text: str


def _text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def _split_fences(text: str) -> tuple[str, list[tuple[str, str]]]:
    """The prose with fenced blocks blanked out, and the blocks as (info, body)."""
    prose: list[str] = []
    blocks: list[tuple[str, str]] = []
    position = 0
    while (opening := FENCE.search(text, position)) is not None:
        fence = opening["fence"]
        closing = re.compile(rf"^ {{0,3}}{fence[0]}{{{len(fence)},}}\s*$", re.MULTILINE)
        end = closing.search(text, opening.end())
        body_end = end.start() if end else len(text)
        prose.append(text[position : opening.start()])
        blocks.append((opening["info"].strip(), text[opening.end() + 1 : body_end]))
        position = end.end() if end else len(text)
    prose.append(text[position:])
    return "\n".join(prose), blocks


def _prose(page: Path) -> str:
    """What renders as text: no fenced blocks, no inline code."""
    return INLINE_CODE.sub("", _split_fences(_text(page))[0])


def _blocks(page: Path) -> list[Block]:
    return [Block(page, info, body) for info, body in _split_fences(_text(page))[1]]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@functools.cache
def _anchors(page: Path) -> frozenset[str]:
    prose, _ = _split_fences(_text(page))
    seen: dict[str, int] = {}
    anchors = set(HTML_ANCHOR.findall(prose))
    for match in HEADING.finditer(prose):
        slug = _slug(match["text"])
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(anchors)


def _relative_links() -> list[tuple[Path, str]]:
    links = []
    for page in PAGES:
        prose = _prose(page)
        for pattern in (LINK, REFERENCE_DEFINITION):
            for match in pattern.finditer(prose):
                target = match["target"]
                if not SCHEME.match(target):
                    links.append((page, target))
    return links


def _shown(page: Path) -> str:
    return str(page.relative_to(ROOT))


# --- the README is a front page ----------------------------------------------------------


def test_the_readme_is_at_most_2000_words() -> None:
    words = len(_text(README).split())
    assert words <= README_MAX_WORDS, (
        f"README.md has {words} words (at most {README_MAX_WORDS}): move reference material "
        "to docs/"
    )


def test_the_readme_draws_the_architecture_in_mermaid() -> None:
    diagrams = [block for block in _blocks(README) if block.info.split()[:1] == ["mermaid"]]
    assert diagrams, "README.md has no ```mermaid block"
    diagram = "\n".join(block.text for block in diagrams)
    assert re.search(r"^\s*(?:flowchart|graph)\b", diagram, re.MULTILINE), diagram
    for part in ("API Gateway", "Mangum", "FastAPI", "RDS Proxy", "PostgreSQL", "cdk deploy"):
        assert part in diagram, f"the architecture diagram does not show {part}"
    assert re.search(r"migration", diagram, re.IGNORECASE), "the diagram shows no migration path"


def test_the_front_page_and_docs_keep_no_run_history() -> None:
    pages = [README, *sorted((ROOT / "docs").glob("*.md"))]
    found = [
        f"{_shown(page)}: {match[0]!r}"
        for page in pages
        for match in RUN_HISTORY.finditer(_text(page))
    ]
    assert not found, "run history belongs in benchmarks/README.md:\n" + "\n".join(found)


# --- links ---------------------------------------------------------------------------------


def test_the_pages_have_relative_links_to_check() -> None:
    assert any(page == README for page, _ in _relative_links())


@pytest.mark.parametrize(
    ("page", "target"), _relative_links(), ids=lambda value: str(value).replace(str(ROOT), "")
)
def test_each_relative_link_resolves_inside_the_repository(page: Path, target: str) -> None:
    path_part, _, anchor = target.partition("#")
    resolved = (page.parent / unquote(path_part)).resolve() if path_part else page
    assert resolved.is_relative_to(ROOT), (
        f"{_shown(page)} links to {target}, outside the repository: a reader of a clone or of "
        "the published repository has nothing there"
    )
    assert resolved.exists(), f"{_shown(page)} links to {target}, which does not exist"
    if anchor:
        assert resolved.suffix == ".md", f"{_shown(page)}: an anchor into a non-Markdown file"
        assert anchor in _anchors(resolved), (
            f"{_shown(page)} links to {target}: {_shown(resolved)} has no heading with anchor "
            f"#{anchor} (it has: {', '.join(sorted(_anchors(resolved)))})"
        )


# --- names ---------------------------------------------------------------------------------


def test_stack_names_are_the_real_ones() -> None:
    wrong = []
    for page in PAGES:
        text = _text(page)
        wrong += [f"{_shown(page)}: {m[0]}" for m in WRONG_STACK_NAME.finditer(text)]
        wrong += [
            f"{_shown(page)}: --stack {m['name']}"
            for m in STACK_ARGUMENT.finditer(text)
            if not STACK_NAME.match(m["name"].strip("`'\""))
        ]
    assert not wrong, "the stack is LambdaApp-<stage> (infra_cdk/app.py):\n" + "\n".join(wrong)


def test_the_stack_name_rule_matches_the_cdk_app() -> None:
    app = (ROOT / "infra_cdk" / "app.py").read_text(encoding="utf-8")
    workload = (ROOT / "lambda_app" / "workload.py").read_text(encoding="utf-8")
    named_in_app = re.search(r'return f"LambdaApp-\{stage\}"', app)
    named_in_workload = re.search(r'STACK_PREFIX\s*=\s*"LambdaApp"', workload) and re.search(
        r"STACK_PREFIX", app
    )
    assert named_in_app or named_in_workload, (
        "the CDK app no longer names its stack LambdaApp-<stage>: update the docs and "
        "STACK_NAME here"
    )


# --- commands ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShownCommand:
    page: Path
    words: tuple[str, ...]  # with any leading VAR=value

    def __str__(self) -> str:
        return f"{_shown(self.page)}: {shlex.join(self.words)}"


def shown_commands() -> list[ShownCommand]:
    """Every command in the fenced bash/sh/shell blocks of the pages, in order."""
    commands = []
    for page in PAGES:
        for block in _blocks(page):
            if block.info.split()[:1] not in (["bash"], ["sh"], ["shell"], ["console"]):
                continue
            for line in command_checks.logical_lines(block.text):
                commands += [
                    ShownCommand(page, tuple(c)) for c in command_checks.simple_commands(line)
                ]
    return commands


def inline_commands() -> list[ShownCommand]:
    """The commands the prose shows in inline code (`make run`, `cdk deploy LambdaApp-dev`):
    a span of two words or more that starts with a program the checks know."""
    commands: dict[ShownCommand, None] = {}  # once per page, in order
    for page in PAGES:
        for match in INLINE_CODE.finditer(_split_fences(_text(page))[0]):
            code = match[0].strip("`").strip()
            for words in command_checks.simple_commands(code):
                if len(words) > 1 and words[0] != "aws" and command_checks.is_checked(words):
                    commands[ShownCommand(page, tuple(words))] = None
    return list(commands)


SHOWN = shown_commands()


def test_the_pages_show_commands_of_each_kind_checked() -> None:
    """Each check has shown commands to read: a check that matches nothing proves nothing."""
    readme = {shlex.join(command.words) for command in SHOWN if command.page == README}
    assert {"make run", "make test"} <= readme, sorted(readme)
    shown = [shlex.join(command.words) for command in SHOWN]
    kinds = (
        "make ",
        ".venv/bin/python -m lambda_app ",
        ".venv/bin/alembic ",
        "npx cdk deploy ",
        "curl ",
        "export ",
    )
    for kind in kinds:
        assert any(line.startswith(kind) for line in shown), f"no shown command is {kind}..."
    assert any(" -c stage=" in line for line in shown), "no shown cdk context"
    assert inline_commands()


@pytest.mark.parametrize("command", SHOWN + inline_commands(), ids=str)
def test_each_command_shown_is_one_the_repository_runs(command: ShownCommand) -> None:
    problem = command_checks.problem(command.words)
    assert problem is None, f"{command}: {problem}"


@pytest.mark.parametrize("words", command_checks.makefile_lambda_app_commands(), ids=shlex.join)
def test_each_make_wrapper_of_the_cli_parses(words: tuple[str, ...]) -> None:
    assert command_checks.check_lambda_app(words[3:]) is None, shlex.join(words)


# --- AWS CLI commands ----------------------------------------------------------------------

# The AWS CLI is generated from botocore's service models: `aws <service> <operation>` is the
# operation's name in kebab case and each `--option` one of its parameters. A few services
# are named otherwise on the command line, and `configure` is the CLI's own.
AWS_CLI_SERVICE_NAMES = {"deploy": "codedeploy", "s3api": "s3", "configservice": "config"}
AWS_CLI_OWN_COMMANDS = {"configure"}
AWS_CLI_GLOBAL_OPTIONS = {
    "--query",
    "--output",
    "--region",
    "--profile",
    "--endpoint-url",
    "--no-paginate",
    "--no-cli-pager",
    "--cli-input-json",
    "--cli-input-yaml",
    "--generate-cli-skeleton",
    "--debug",
    "--color",
    # pagination, on the operations botocore can page
    "--max-items",
    "--page-size",
    "--starting-token",
}


def _aws_cli_commands() -> list[ShownCommand]:
    """Every `aws ...` command: in the shell blocks, and in the prose's inline code (where
    the pages show most of them, beside the text that says when to run one)."""
    found = [command for command in SHOWN if command.words[0] == "aws"]
    for page in PAGES:
        for match in INLINE_CODE.finditer(_split_fences(_text(page))[0]):
            words = tuple(match[0].strip("`").split())
            if words[:1] == ("aws",) and len(words) > 1:
                found.append(ShownCommand(page, words))
    return found


def test_the_pages_show_aws_cli_commands_to_check() -> None:
    shown = {command.words[1:3] for command in _aws_cli_commands()}
    assert ("lambda", "get-account-settings") in shown, sorted(shown)


@pytest.mark.parametrize("command", _aws_cli_commands(), ids=str)
def test_each_aws_cli_command_and_option_shown_exists(command: ShownCommand) -> None:
    import botocore.session
    from botocore import xform_name

    arguments = command.words[1:]
    if arguments[0] in AWS_CLI_OWN_COMMANDS:
        return
    session = botocore.session.get_session()
    service = AWS_CLI_SERVICE_NAMES.get(arguments[0], arguments[0])
    assert service in session.get_available_services(), f"{command}: no AWS service {service!r}"
    model = session.get_service_model(service)
    operations = {xform_name(name, "-"): name for name in model.operation_names}
    assert len(arguments) > 1 and arguments[1] in operations, (
        f"{command}: `aws {arguments[0]}` has no command {arguments[1:2]}"
    )
    inputs = model.operation_model(operations[arguments[1]]).input_shape
    members = inputs.members if inputs is not None else {}
    known = AWS_CLI_GLOBAL_OPTIONS | {f"--{xform_name(name, '-')}" for name in members}
    known |= {
        f"--no-{xform_name(name, '-')}"
        for name, shape in members.items()
        if shape.type_name == "boolean"
    }
    options = {word.split("=", 1)[0] for word in arguments[2:] if word.startswith("--")}
    assert options <= known, (
        f"{command}: `aws {arguments[0]} {arguments[1]}` has no option "
        f"{', '.join(sorted(options - known))}"
    )


# --- the settings table --------------------------------------------------------------------


def _documented_settings() -> dict[str, str]:
    """docs/configuration.md's table: each variable (lower case) and who reads it."""
    readers = {}
    for line in _text(ROOT / "docs" / "configuration.md").splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        for variable in re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0]):
            readers[variable.lower()] = cells[2]
    return readers


def test_the_settings_table_lists_each_setting_with_the_function_that_reads_it() -> None:
    from lambda_app.core.settings import ApiSettings
    from lambda_app.migrate.settings import MigrationSettings

    api, migration = set(ApiSettings.model_fields), set(MigrationSettings.model_fields)
    documented = _documented_settings()
    wrong = []
    for field in sorted(api | migration):
        if field in api and field in migration:
            reader = "both"
        else:
            reader = "API" if field in api else "migration"
        if documented.get(field) != reader:
            wrong.append(f"{field.upper()}: read by {reader}, documented: {documented.get(field)}")
    assert not wrong, "docs/configuration.md is out of date:\n" + "\n".join(wrong)


def test_the_autogenerate_examples_name_the_next_free_revision_id() -> None:
    """An id already taken would make the new script revise itself: a cycle alembic refuses.

    A revision an example wrote (its file named as the example's `-m` makes it: someone
    followed "Extend it") doesn't count: the example was right when they followed it."""
    examples = {
        page.name: re.findall(r'--rev-id (\S+)(?: -m "([^"]+)")?', _text(page))
        for page in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
    }
    found = {name: [rev for rev, _ in shown] for name, shown in examples.items() if shown}
    assert found, "no autogenerate example found"
    written = {
        re.sub(r"\W+", "_", message).strip("_").lower()  # as alembic names the file
        for shown in examples.values()
        for _, message in shown
    }
    taken = sorted(
        path.name[:4]
        for path in (ROOT / "migrations" / "versions").glob("[0-9]*.py")
        if path.stem[5:] not in written
    )
    next_free = f"{int(taken[-1]) + 1:04d}"
    wrong = {name: ids for name, ids in found.items() if set(ids) != {next_free}}
    assert not wrong, f"use --rev-id {next_free}: {wrong}"
