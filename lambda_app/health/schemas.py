from typing import Literal

from lambda_app.core.schemas import Schema


class HealthStatus(Schema):
    status: Literal["ok"]
