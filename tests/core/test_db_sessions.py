"""How the request engine and sessions talk to PostgreSQL."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool.base import ResetStyle

from lambda_app.core import db
from lambda_app.models import User


async def test_request_sessions_read_inside_a_transaction(engine: AsyncEngine) -> None:
    # Behind transaction pooling (PgBouncer, RDS Proxy) only a transaction keeps
    # asyncpg's prepare and execute on one server connection, reads included.
    async with db.get_sessionmaker()() as session:
        await session.execute(select(User.id).limit(1))
        raw = await (await session.connection()).get_raw_connection()
        assert raw.driver_connection.is_in_transaction()


def test_pool_does_not_roll_back_connections_it_closes_anyway(engine: AsyncEngine) -> None:
    # NullPool closes on return; a reset ROLLBACK would be a wasted round trip.
    reset = engine.sync_engine.pool._reset_on_return  # type: ignore[attr-defined]
    assert reset is ResetStyle.reset_none
