"""C, the typical peer: FastAPI + SQLAlchemy async + Mangum the way tutorials write them.

Default settings everywhere: the engine is created at import with its default
connection pool, `Mangum(app)` with its default lifespan handling, one route.

`BENCH_PEER_POOL=null` runs the same app with `NullPool` (C-null in the warm table): a
connection per request, as A (with its default `DB_POOL=null`) and B make.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import AsyncIterator
from typing import Annotated

import jwt
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import OAuth2PasswordBearer
from mangum import Mangum
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import NullPool

SECRET_KEY = os.environ["JWT_SECRET"]
DATABASE_URL = os.environ["DATABASE_URL"]

engine = (
    create_async_engine(DATABASE_URL, poolclass=NullPool)
    if os.environ.get("BENCH_PEER_POOL") == "null"
    else create_async_engine(DATABASE_URL)
)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token")


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str]
    slug: Mapped[str]
    email: Mapped[str]
    first_name: Mapped[str]
    last_name: Mapped[str]
    hashed_password: Mapped[str]
    is_active: Mapped[bool]
    is_superuser: Mapped[bool]
    token_version: Mapped[int]
    created_at: Mapped[datetime.datetime]
    updated_at: Mapped[datetime.datetime]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    slug: str
    email: str
    first_name: str
    last_name: str
    is_active: bool
    is_superuser: bool
    created_at: datetime.datetime
    updated_at: datetime.datetime


async def get_db() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session


async def get_current_user(
    token: Annotated[str, Depends(oauth2_scheme)],
    db: Annotated[AsyncSession, Depends(get_db)],
) -> User:
    unauthorized = HTTPException(status_code=401, detail="Could not validate credentials")
    try:
        payload = jwt.decode(token, SECRET_KEY, algorithms=["HS256"])
        user_id = int(payload["sub"])
    except (jwt.PyJWTError, KeyError, ValueError):
        raise unauthorized from None
    user = await db.get(User, user_id)
    if user is None or not user.is_active or user.token_version != payload.get("ver"):
        raise unauthorized
    return user


app = FastAPI()


@app.get("/api/users/me", response_model=UserOut)
async def read_users_me(current_user: Annotated[User, Depends(get_current_user)]) -> User:
    return current_user


handler = Mangum(app)
