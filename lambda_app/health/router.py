from __future__ import annotations

from fastapi import APIRouter

from lambda_app.core.errors import DatabaseUnavailable, error_responses
from lambda_app.health.errors import SchemaUnusable
from lambda_app.health.schemas import HealthStatus
from lambda_app.health.service import check_ready

router = APIRouter(prefix="/health", tags=["health"])


@router.get("", response_model=HealthStatus, summary="Liveness: never touches the database")
async def health() -> HealthStatus:
    return HealthStatus(status="ok")


@router.get(
    "/ready",
    response_model=HealthStatus,
    responses=error_responses(DatabaseUnavailable, SchemaUnusable),
    summary="Readiness: the API's role can read every table and column the code maps",
)
async def ready() -> HealthStatus:
    # Connection errors become a 503 through the shared database-error handler.
    await check_ready()
    return HealthStatus(status="ok")
