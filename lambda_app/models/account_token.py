from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    String,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from lambda_app.models.base import Base
from lambda_app.models.refresh_token import TOKEN_HASH_LENGTH
from lambda_app.models.user import EMAIL_MAX


class TokenPurpose(StrEnum):
    """What a single-use account token is for. Stored as text with a CHECK, not a
    PostgreSQL enum: asyncpg's first meeting with an enum type runs `set_config`, which
    pins RDS Proxy sessions."""

    RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose, not a password
    VERIFY_EMAIL = "verify_email"


class AccountToken(Base):
    """A single-use token sent by email (a password reset, an email verification).

    Only its SHA-256 is stored. It is bound to the address it was sent to: once the
    user's email changes, a link sent to the old address stops working.
    """

    __tablename__ = "account_tokens"
    __table_args__ = (
        CheckConstraint("purpose IN ('reset_password', 'verify_email')", name="purpose_known"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # Indexed: deleting a user's other tokens, the bounded clean-up, the cascade.
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), unique=True)
    email: Mapped[str] = mapped_column(String(EMAIL_MAX))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
