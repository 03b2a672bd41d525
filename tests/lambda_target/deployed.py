"""The two functions as the stack deploys them: handler, memory size, environment.

The handlers and memory sizes are read from the constructs' source: importing a construct
module would start the CDK's jsii runtime (seconds) for a few literals.
"""

from __future__ import annotations

import ast

from infra_cdk.bundling import PROJECT_ROOT
from tests.lambda_target.function_process import FunctionConfig

CONSTRUCTS = PROJECT_ROOT / "infra_cdk" / "constructs"
# Generous: qemu is slow, and the machine is shared.
INVOKE_TIMEOUT_S = 180.0
# What the stack sets (infra_cdk/stack.py), less the database: the tests give a URL.
STACK_ENVIRONMENT = {"ENVIRONMENT": "dev", "LOG_LEVEL": "INFO"}
JWT_SECRET = "target-test-jwt-secret-0123456789abcdef"


def _construct_constant(module: str, name: str) -> object:
    tree = ast.parse((CONSTRUCTS / f"{module}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == name for target in node.targets
        ):
            return ast.literal_eval(node.value)
    raise LookupError(f"{name} not found in infra_cdk/constructs/{module}.py")


def _function(module: str, prefix: str, name: str) -> FunctionConfig:
    handler = _construct_constant(module, f"{prefix}_HANDLER")
    memory_mb = _construct_constant(module, f"{prefix}_MEMORY_MB")
    assert isinstance(handler, str) and isinstance(memory_mb, int), (handler, memory_mb)
    return FunctionConfig(
        name=name,
        handler=handler,
        memory_mb=memory_mb,
        timeout_s=INVOKE_TIMEOUT_S,
        environment={**STACK_ENVIRONMENT, "JWT_SECRET": JWT_SECRET},
    )


def api_function() -> FunctionConfig:
    return _function("api", "API", "lambda-app-api")


def migration_function() -> FunctionConfig:
    return _function("migrations", "MIGRATION", "lambda-app-migrations")
