"""CORS origins in the stack: chosen per stage or by `-c cors_allowed_origins`, handed to the
API function, and never configured at API Gateway as well (the app answers CORS)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from infra_cdk.app import with_cors_origins
from infra_cdk.config import STAGES
from tests.infra.conftest import Synth, synthesize

ORIGINS = "https://App.example.com, http://localhost:5173"


@pytest.fixture(scope="module")
def with_origins(_no_aws_credentials: None, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize("dev", tmp_path_factory.mktemp("cdk-cors"), cors_allowed_origins=ORIGINS)


def _api_environment(synth: Synth) -> dict[str, Any]:
    functions = synth.of_type("AWS::Lambda::Function").values()
    (api,) = [f for f in functions if f["Properties"].get("Handler", "").endswith("api.handler")]
    return dict(api["Properties"]["Environment"]["Variables"])


def test_the_context_origins_reach_the_api_function_normalized(with_origins: Synth) -> None:
    assert with_origins.error is None, with_origins.error  # cdk-nag and friends still pass
    environment = _api_environment(with_origins)
    assert environment["CORS_ALLOWED_ORIGINS"] == "https://app.example.com,http://localhost:5173"


def test_no_origins_no_variable(synth: Synth) -> None:
    assert "CORS_ALLOWED_ORIGINS" not in _api_environment(synth)


@pytest.mark.parametrize("fixture", ["dev", "prod", "with_origins"])
def test_api_gateway_answers_no_cors_itself(request: pytest.FixtureRequest, fixture: str) -> None:
    synth: Synth = request.getfixturevalue(fixture)
    (http_api,) = synth.of_type("AWS::ApiGatewayV2::Api").values()
    assert "CorsConfiguration" not in http_api["Properties"]  # HttpApi(cors_preflight=...) unset
    route_keys = [
        r["Properties"]["RouteKey"] for r in synth.of_type("AWS::ApiGatewayV2::Route").values()
    ]
    assert not [key for key in route_keys if key.startswith("OPTIONS")]


def test_the_stage_config_gives_the_default_and_the_context_replaces_it() -> None:
    config = replace(STAGES["dev"], cors_allowed_origins=("https://app.example.com",))
    assert with_cors_origins(config, None).cors_allowed_origins == ("https://app.example.com",)
    replaced = with_cors_origins(config, "https://other.example.com")
    assert replaced.cors_allowed_origins == ("https://other.example.com",)
    assert with_cors_origins(config, "").cors_allowed_origins == ()  # `-c cors_allowed_origins=`
    assert with_cors_origins(STAGES["prod"], None).cors_allowed_origins == ()


@pytest.mark.parametrize("value", ["*", "https://app.example.com/path", "app.example.com"])
def test_origins_the_api_would_refuse_fail_the_synth(value: str) -> None:
    with pytest.raises(ValueError, match="cors_allowed_origins"):
        with_cors_origins(STAGES["dev"], value)
