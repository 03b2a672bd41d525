from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from lambda_app.core.errors import DatabaseUnavailable, error_responses
from lambda_app.db.session import reading
from lambda_app.health.schemas import HealthStatus

router = APIRouter(prefix="/health", tags=["health"])


@router.get("", response_model=HealthStatus, summary="Liveness: never touches the database")
async def health() -> HealthStatus:
    return HealthStatus(status="ok")


@router.get(
    "/ready",
    response_model=HealthStatus,
    responses=error_responses(DatabaseUnavailable),
    summary="Readiness: the database answers `SELECT 1`",
)
async def ready() -> HealthStatus:
    # Connection errors become a 503 through the shared database-error handler.
    async with reading() as session:
        await session.execute(text("SELECT 1"))
    return HealthStatus(status="ok")
