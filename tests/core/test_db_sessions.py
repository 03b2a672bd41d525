"""Read-only requests run in autocommit mode; writing requests in one transaction."""

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from lambda_app.core import db
from lambda_app.models import User


async def _in_transaction_after_select(maker: object) -> bool:
    async with maker() as session:  # type: ignore[operator]
        await session.execute(select(User.id).limit(1))
        raw = await (await session.connection()).get_raw_connection()
        return bool(raw.driver_connection.is_in_transaction())


async def test_read_sessions_send_no_begin(engine: AsyncEngine) -> None:
    assert await _in_transaction_after_select(db.get_read_sessionmaker()) is False


async def test_write_sessions_run_in_a_transaction(engine: AsyncEngine) -> None:
    assert await _in_transaction_after_select(db.get_sessionmaker()) is True


async def test_read_sessions_refuse_writes(engine: AsyncEngine) -> None:
    async with db.get_read_sessionmaker()() as session:
        session.add(
            User(username="never", slug="never", email="never@example.com", hashed_password="x")
        )
        with pytest.raises(db.ReadOnlyRequestError):
            await session.flush()
    async with engine.connect() as conn:
        found = await conn.scalar(text("SELECT count(*) FROM users WHERE username = 'never'"))
    assert found == 0


def test_pool_does_not_roll_back_connections_it_closes_anyway(engine: AsyncEngine) -> None:
    # NullPool closes on return; a reset ROLLBACK would be a wasted round trip.
    from sqlalchemy.pool.base import ResetStyle

    reset = engine.sync_engine.pool._reset_on_return  # type: ignore[attr-defined]
    assert reset is ResetStyle.reset_none
