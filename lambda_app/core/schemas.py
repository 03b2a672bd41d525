"""The base class of every request and response body."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Schema(BaseModel):
    # Validators and serializers are built on first use instead of at import: a cold
    # start then builds only what its first request needs (see benchmarks/). Most
    # of these models are only ever needed to render the OpenAPI schema.
    model_config = ConfigDict(defer_build=True)


class Accepted(Schema):
    """A request taken (202): what happens next, in words."""

    message: str
