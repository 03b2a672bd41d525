from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import BigInteger, DateTime, ForeignKey, Identity, Integer, String, Uuid, func
from sqlalchemy.orm import Mapped, mapped_column

from lambda_app.models.base import Base

TOKEN_HASH_LENGTH = 64  # SHA-256, hex


class RefreshToken(Base):
    """One refresh token of a session (a family): only its hash is stored.

    Refreshing spends a token and adds the next one to its family; presenting a spent
    token again revokes the whole family (lambda_app/identity/sessions.py).
    """

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # Indexed: revoking all of a user's sessions, the bounded clean-up of expired rows,
    # and the cascade when a user is deleted.
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # Indexed: revoking one session, and checking the session an access token names.
    family_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    token_hash: Mapped[str] = mapped_column(String(TOKEN_HASH_LENGTH), unique=True)
    # The user's token_version when the family was started: a password change ends it
    # even if a family was somehow missed by the revocation.
    token_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # The end of the whole session (SESSION_MAX_DAYS after its login), which no refresh
    # moves; None for rows stored before it was kept (counted from their next refresh).
    session_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    spent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
