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


# HEAD as well, answered like GET without the body (core.middleware drops it): uptime
# monitors often probe with HEAD, and HTTP asks a server to serve HEAD wherever it serves GET.
router.head("", response_model=HealthStatus, summary="Liveness, as HEAD: no body")(health)


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


router.head(
    "/ready",
    response_model=HealthStatus,
    responses=error_responses(DatabaseUnavailable),
    summary="Readiness, as HEAD: no body",
)(ready)
