"""`python -m lambda_app release` against moto's CloudFormation and Lambda.

moto can't run the real function here (its Lambda runtime needs Docker), so it runs with
its documented Docker-free Lambda backend (`config={"lambda": {"use_docker": False}}`):
an invoke echoes the event back, or returns the next result queued through moto's API
(`/moto-api/static/lambda-simple/response`). That backend cannot return an arbitrary
FunctionError; moto does return one, as Lambda does, for a response over 6 MB, and the
realistic "the migration raised" payload is played back with botocore's Stubber on the
client our code builds.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import stat
import sys
import threading
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.response import StreamingBody
from botocore.stub import Stubber

from lambda_app.devtools.cli import main
from lambda_app.devtools.release import (
    EXIT_FUNCTION_ERROR,
    EXIT_NOT_OK,
    EXIT_OK,
    READ_TIMEOUT_SECONDS,
    invoke_migration,
    lambda_client,
)
from tests.fixtures.aws import moto_aws, use_dummy_aws_credentials

REGION = "eu-west-1"
STACK = "lambda-app-dev"
FUNCTION = "lambda-app-dev-migrate"
MOTO_LAMBDA_RESULTS = "http://motoapi.amazonaws.com/moto-api/static/lambda-simple/response"
SUCCESS = {
    "ok": True,
    "action": "upgrade",
    "from_revision": None,
    "to_revision": "0001",
    "head": "0001",
    "applied": ["0001"],
    "duration_ms": 812,
    "superuser": None,
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with moto_aws(monkeypatch, REGION):
        yield


def deploy(*, output_key: str = "MigrationFunctionName", function: str = FUNCTION) -> None:
    """A stack whose outputs name the migration function, and the function itself."""
    template = {
        "Resources": {
            "Releases": {
                "Type": "AWS::SSM::Parameter",
                "Properties": {"Name": "lambda-app-release", "Type": "String", "Value": "1"},
            }
        },
        "Outputs": {
            output_key: {"Value": function},
            "ApiUrl": {"Value": "https://example.execute-api.eu-west-1.amazonaws.com/"},
        },
    }
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName=STACK, TemplateBody=json.dumps(template)
    )
    role = boto3.client("iam").create_role(
        RoleName="migrate", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17"})
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("lambda_app/handlers/migrate.py", "def handler(event, context): ...")
    boto3.client("lambda", region_name=REGION).create_function(
        FunctionName=function,
        Runtime="python3.12",
        Role=role,
        Handler="lambda_app.handlers.migrate.handler",
        Code={"ZipFile": code.getvalue()},
        Timeout=900,
    )


def queue_results(*results: Any) -> None:
    """What moto's Docker-free Lambda returns for the next invocations, in order."""
    body = {"results": [r if isinstance(r, str) else json.dumps(r) for r in results]}
    response = requests.post(MOTO_LAMBDA_RESULTS, json={**body, "region": REGION}, timeout=10)
    assert response.status_code == 201


# --- the client configuration ---------------------------------------------------------------


def test_the_lambda_client_waits_out_a_full_run_and_never_retries() -> None:
    client = lambda_client(REGION)

    config = client.meta.config
    assert config.read_timeout >= 900
    assert READ_TIMEOUT_SECONDS >= 900
    assert config.connect_timeout <= 30
    # botocore normalises max_attempts=0 (retries) to one attempt in total
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}
    assert config.tcp_keepalive is True


def socket_connected_from(address: tuple[str, int]) -> socket.socket:
    """This process's own socket whose local end is `address`: the client's end of a
    connection a test server accepted. Found by its descriptor, not through botocore."""
    for fd in (int(name) for name in os.listdir("/proc/self/fd")):
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            candidate = socket.socket(fileno=os.dup(fd))
        except OSError:  # the listing's own descriptor, closed by now
            continue
        try:
            if candidate.family == socket.AF_INET and candidate.getsockname() == address:
                return candidate
        except OSError:
            pass
        candidate.close()
    raise AssertionError(f"no socket of this process is bound to {address}")


@pytest.mark.skipif(sys.platform != "linux", reason="reads the probes' Linux options")
def test_the_lambda_clients_connection_sends_keepalive_probes_before_a_nat_forgets_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given: a server that accepts the invoke and holds its answer, as Lambda does for a
    # long migration. The kernel's own first probe comes after 2 hours of idle (Linux's
    # tcp_keepalive_time); a NAT gateway forgets an idle flow after 350 s.
    use_dummy_aws_credentials(monkeypatch, REGION)
    server = socket.create_server(("127.0.0.1", 0))
    host, port = server.getsockname()
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", f"http://{host}:{port}")
    client = lambda_client(REGION)
    answer: dict[str, Any] = {}
    invoking = threading.Thread(
        target=lambda: answer.update(code=invoke_migration(client, FUNCTION, {"action": "current"}))
    )
    invoking.start()

    # when: the invoke's connection is open and waiting
    connection, peer = server.accept()
    try:
        with socket_connected_from(peer) as client_end:
            options = {
                name: client_end.getsockopt(level, option)
                for name, level, option in (
                    ("SO_KEEPALIVE", socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                    ("TCP_KEEPIDLE", socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                    ("TCP_KEEPINTVL", socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                    ("TCP_KEEPCNT", socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                )
            }
    finally:
        body = json.dumps({"ok": True, "action": "current"}).encode()
        connection.recv(65536)
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        invoking.join(timeout=30)
        connection.close()
        server.close()

    # then: probes start after a minute idle, well inside 350 s, and a dead path is
    # noticed within minutes instead of after the 960 s read timeout
    assert options == {"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": 60, "TCP_KEEPINTVL": 30, "TCP_KEEPCNT": 5}
    assert options["TCP_KEEPIDLE"] + options["TCP_KEEPINTVL"] * options["TCP_KEEPCNT"] < 350
    assert answer == {"code": EXIT_OK}


def test_a_connection_lost_while_waiting_says_the_migration_may_still_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: the invoke reaches Lambda, then the path drops it (as the kernel does when
    # keepalive probes go unanswered)
    use_dummy_aws_credentials(monkeypatch, REGION)
    server = socket.create_server(("127.0.0.1", 0))
    host, port = server.getsockname()
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", f"http://{host}:{port}")

    def drop_the_invoke() -> None:
        connection, _ = server.accept()
        connection.recv(65536)
        connection.close()

    dropping = threading.Thread(target=drop_the_invoke)
    dropping.start()

    # when
    code = main(["release", "--function", FUNCTION, "--region", REGION])

    # then: not retried, and the operator is told to look before releasing again
    dropping.join(timeout=30)
    server.close()
    assert code == 1
    err = capsys.readouterr().err
    assert "connection to Lambda was lost" in err and "check its logs" in err


# --- the command, through moto ----------------------------------------------------------------


def test_release_finds_the_function_in_the_stack_and_prints_the_result(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    deploy()
    queue_results(SUCCESS)

    # when
    code = main(["release", "--stack", STACK, "--region", REGION])

    # then
    out = capsys.readouterr()
    assert code == EXIT_OK
    assert json.loads(out.out) == SUCCESS
    assert FUNCTION in out.err


def test_release_sends_the_action_and_revision(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # moto's Docker-free Lambda echoes the event when no result is queued
    deploy()

    args = ["--function", FUNCTION, "--action", "downgrade", "--revision", "base"]
    code = main(["release", *args, "--region", REGION])

    assert json.loads(capsys.readouterr().out) == {"action": "downgrade", "revision": "base"}
    assert code == EXIT_NOT_OK  # an echo is not a migration result: no ok=true in it


def test_a_prefixed_output_key_is_found(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    deploy(output_key="MigrationsMigrationFunctionName")
    queue_results(SUCCESS)

    assert main(["release", "--stack", STACK, "--region", REGION]) == EXIT_OK


def test_ok_false_exits_non_zero(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    deploy()
    drift = {**SUCCESS, "action": "check", "applied": [], "ok": False, "drift": ["add_column"]}
    queue_results(drift)

    code = main(["release", "--stack", STACK, "--region", REGION, "--action", "check"])

    out = capsys.readouterr()
    assert code == EXIT_NOT_OK
    assert json.loads(out.out) == drift
    assert "ok=false" in out.err


def test_a_function_error_exits_non_zero_and_prints_the_error(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Lambda turns an oversized response into a FunctionError; moto does the same.
    deploy()
    queue_results("x" * 6_000_001)

    code = main(["release", "--stack", STACK, "--region", REGION])

    out = capsys.readouterr()
    assert code == EXIT_FUNCTION_ERROR
    assert out.out == ""
    assert "Function.ResponseSizeTooLarge" in out.err


def test_a_stack_without_the_output_is_a_clear_error(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy(output_key="SomethingElse")

    assert main(["release", "--stack", STACK, "--region", REGION]) == 1
    err = capsys.readouterr().err
    assert "no MigrationFunctionName output" in err and "SomethingElse" in err


def test_a_downgrade_needs_a_revision(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["release", "--function", FUNCTION, "--action", "downgrade"]) == 1
    assert "downgrade needs an explicit revision" in capsys.readouterr().err


def test_a_missing_stack_is_a_clear_error(aws: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["release", "--stack", "nope", "--region", REGION]) == 1
    assert "nope" in capsys.readouterr().err


# --- a migration that raised: the real error payload, played back -------------------------------


def test_a_failed_migration_prints_the_error_payload_and_log_tail(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # given: what Lambda returns when the handler raised MigrationFailed
    error = {
        "errorMessage": "DivisionByZeroError: division by zero",
        "errorType": "MigrationFailed",
        "requestType": "Invoke",
        "stackTrace": ['  File "/var/task/lambda_app/handlers/migrate.py", line 119\n'],
    }
    raw = json.dumps(error).encode()
    log_tail = '{"level": "ERROR", "message": "migration failed"}\n'
    client = lambda_client(REGION)
    stubber = Stubber(client)
    stubber.add_response(
        "invoke",
        {
            "StatusCode": 200,
            "FunctionError": "Unhandled",
            "LogResult": base64.b64encode(log_tail.encode()).decode(),
            "Payload": StreamingBody(io.BytesIO(raw), len(raw)),
        },
        {
            "FunctionName": FUNCTION,
            "InvocationType": "RequestResponse",
            "LogType": "Tail",
            "Payload": json.dumps({"action": "upgrade"}).encode(),
        },
    )

    # when
    with stubber:
        code = invoke_migration(client, FUNCTION, {"action": "upgrade"})

    # then
    out = capsys.readouterr()
    assert code == EXIT_FUNCTION_ERROR
    assert out.out == ""
    assert "division by zero" in out.err and "MigrationFailed" in out.err
    assert "migration failed" in out.err  # the log tail
    stubber.assert_no_pending_responses()
